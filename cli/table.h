/* Aligned text tables for the CLI's human output.
 *
 * Cells are added left to right; a row ends after the last column. Columns
 * are as wide as their widest cell (counted in UTF-8 characters), separated
 * by two spaces, left-aligned unless set right (numbers). Control characters
 * in cells are shown as '?', because cells carry names and labels the master
 * returns and they must not drive the operator's terminal. Trailing padding is
 * dropped, so lines carry no trailing spaces.
 *
 * A table is a class: table_new()/table_destroy(). One thread at a time. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/mem.h"

#define TABLE_MAX_COLS 16 /* columns a table can have */

typedef struct table table_t;

/* Creates a table with ncols columns (1..TABLE_MAX_COLS). headers is NULL for
 * a table without a header line, or ncols strings (copied). */
table_t *table_new(size_t ncols, const char *const *headers);
/* Frees the table. NULL-safe, clears *t. */
void table_destroy(table_t **t);

/* Right-aligns column col (numbers). */
void table_align_right(table_t *t, size_t col);

/* Appends one cell (copied; NULL is shown as "-"). */
void table_add(table_t *t, const char *text);
/* Appends one formatted cell. */
void table_addf(table_t *t, const char *fmt, ...) _printf_(2, 3);

/* Rows completed so far (a partly filled last row counts). */
size_t table_rows(const table_t *t);

/* Writes the table; a partly filled last row is padded with empty cells. */
void table_print(const table_t *t, FILE *f);

/* Writes the table as CSV (RFC 4180: CRLF line ends, fields quoted when
 * they hold a comma, quote or line end), the header line first. */
void table_print_csv(const table_t *t, FILE *f);
/* Formats a byte count for people: "512", "256M", "1.5G", "117.7M" (binary
 * units, at most one decimal, trailing ".0" dropped). Returns buf. */
char *table_size(uint64_t bytes, char *buf, size_t n);

/* Formats a rate in bits per second as tc and the API read it: "512bit",
 * "10mbit", "1.5gbit" (decimal units, at most one decimal, trailing ".0"
 * dropped). Returns buf. */
char *table_rate(uint64_t bits_per_sec, char *buf, size_t n);
