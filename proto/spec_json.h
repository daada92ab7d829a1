/* The guest spec and usage sample as JSON (jansson): the one mapping shared by
 * the node's local store and the master's REST API, so a guest body in the API
 * is the same text the node keeps on disk.
 *
 *   {"id":"<uuid>","name":"web1","generation":3,"template":"busybox",
 *    "init":"/sbin/init","domainname":"","halt_signal":"SIGTERM","stop_timeout":30,
 *    "flags":["private","lock"],"autostart":true,"restart":"on-failure",
 *    "restart_max":5,"restart_backoff":10,
 *    "limits":{"procs":64,"memory":268435456,"rss":0,"swap":0,"cpu_weight":100,
 *              "cpu_max":0.5,"cpu_burst":0.25,"io_weight":100,
 *              "disk":1073741824,"inodes":100000,"nofile":1024,"tcp_sockets":0,
 *              "net_in":0,"net_out":0,
 *              "io":[{"device":"8:0","read_bps":0,"write_bps":0,"read_iops":0,
 *                     "write_iops":0}]},
 *    "caps_add":["net_admin"],"caps_drop":["mknod"],"ips":["10.0.0.5","2001:db8::5"],
 *    "labels":{"tier":"web"}}
 *
 * Decisions (the API reference must repeat them for clients):
 * - Every field is always emitted; a limit of 0 means "not set" as in spec.h
 *   and is emitted as 0, so a reader never has to guess a default.
 * - "limits" holds one key per row of SPEC_LIMIT_FIELDS (spec_fields.h), read
 *   and written by the row's unit, then "io".
 * - Sizes (memory, rss, swap, disk, io read_bps/write_bps) are emitted as byte
 *   counts and read as an integer or a suffixed string ("256M", "1.5G");
 *   rates (net_in, net_out) are bits per second, read as an integer or "10mbit".
 * - cpu_max and cpu_burst are cores as a number (0.5 = 500 millicores), rounded
 *   to the nearest millicore, 0..1024 cores.
 * - A limit that is not 0 but comes to 0 in its unit ("0.0000001K", 0.0001
 *   cores) is an error naming the field, never 0 ("not set", i.e. unlimited).
 * - halt_signal is a name ("SIGTERM"; "TERM", lower case and a number are also
 *   read); 0 (the default, SIGTERM) is emitted as "" so it reads back as 0.
 * - A 64-bit value above 2^63-1 (which JSON integers in jansson cannot hold) is
 *   emitted as a decimal string, and every integer field also reads a decimal
 *   string, so any spec round-trips.
 * - "ips" are addresses, emitted without the prefix when it is the full length.
 * - restart is a policy name: "never", "on-failure" or "always".
 * - null is a type error everywhere: to reset a field, send its zero value.
 *
 * Threads: no shared state; safe from any thread. */
#pragma once

#include <jansson.h>
#include <stddef.h>

#include "proto/spec.h"
#include "proto/usage.h"

/* Reads a guest spec from a JSON object, strictly: an unknown key at the top
 * level, in "limits" or in an "io" entry, a wrong type, a negative or
 * out-of-range number, an unreadable size, address or capability name, or a
 * string that does not fit its field is an error.
 *
 * PATCH semantics: a key that is absent leaves that field of *out as it was,
 * so the caller passes the current spec to apply a partial update, or a zeroed
 * spec to read a whole one. "limits" is merged key by key; arrays and maps
 * ("flags", "caps_add", "caps_drop", "ips", "labels", "limits.io") replace the
 * whole field when present.
 *
 * The result is checked with spec_validate(). Returns 0, or -EINVAL with *out
 * unchanged and, when errfield is not NULL, the offending field's name written
 * to errfield (n bytes, always terminated): "limits.memry" for an unknown key,
 * "limits.io[1].device" inside an array, "(root)" when j is not an object. */
int spec_from_json(const json_t *j, struct guest_spec *out, char *errfield, size_t n);

/* Builds the JSON object of a spec. The caller owns the result (json_decref).
 * Never returns NULL (allocation failure aborts). spec_from_json on the result
 * into a zeroed spec gives back an identical spec (byte for byte in every
 * used field) for any spec that passes spec_validate(). */
json_t *spec_to_json(const struct guest_spec *s);

/* A usage sample as JSON: {"id":..., "time_ms":..., "cpu_ns":..., ...,
 * "failcnt":{"procs":0,"memory":0,"oom":0,"disk":0,"tcp":0}}. Every field is
 * emitted; the caller owns the result. */
json_t *usage_to_json(const struct guest_usage *u);

/* Reads a usage sample, strictly (unknown keys and wrong types are errors),
 * with the same absent-key-keeps-the-field rule as spec_from_json. "id" may be
 * "" (a baseline not yet tied to a guest) or a UUID. Returns 0 or -EINVAL with
 * *out unchanged and errfield set as in spec_from_json. */
int usage_from_json(const json_t *j, struct guest_usage *out, char *errfield, size_t n);
