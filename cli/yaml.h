/* JSON documents as YAML (--output yaml): block style, keys in the order the
 * master sent them, strings plain when YAML reads them back as the same
 * string and double-quoted (JSON's escapes, valid YAML) otherwise. */
#pragma once

#include <jansson.h>
#include <stdio.h>

/* Writes j as a YAML document to f. */
void cli_yaml(FILE *f, const json_t *j);
