/* The REST API's handlers, one per route of the table in api.c. Each parses
 * its request, calls the guest domain (guests.h) or the registry, and
 * answers exactly once (now, or later through a waiter). Loop thread only. */
#pragma once

#include "master/api.h"
#include "master/httpd.h"

/* http_nodes.c */
void h_health(master_t *m, struct http_req *req, const struct api_match *am);
void h_node_list(master_t *m, struct http_req *req, const struct api_match *am);
void h_node_get(master_t *m, struct http_req *req, const struct api_match *am);
void h_node_cordon(master_t *m, struct http_req *req, const struct api_match *am);
void h_node_uncordon(master_t *m, struct http_req *req, const struct api_match *am);
void h_node_routes(master_t *m, struct http_req *req, const struct api_match *am);
void h_node_orphans(master_t *m, struct http_req *req, const struct api_match *am);
void h_orphan_adopt(master_t *m, struct http_req *req, const struct api_match *am);
void h_orphan_destroy(master_t *m, struct http_req *req, const struct api_match *am);
/* The node link's trust (admin only). */
void h_node_revoke(master_t *m, struct http_req *req, const struct api_match *am);
void h_join_token_create(master_t *m, struct http_req *req, const struct api_match *am);
void h_join_token_list(master_t *m, struct http_req *req, const struct api_match *am);

/* http_guests.c: the guest collection and one guest as a whole */
void h_guest_list(master_t *m, struct http_req *req, const struct api_match *am);
void h_guest_create(master_t *m, struct http_req *req, const struct api_match *am);
void h_guest_batch(master_t *m, struct http_req *req, const struct api_match *am);
void h_guest_get(master_t *m, struct http_req *req, const struct api_match *am);
void h_guest_patch(master_t *m, struct http_req *req, const struct api_match *am);
void h_guest_delete(master_t *m, struct http_req *req, const struct api_match *am);

/* http_guest_ops.c: what is done to a guest */
void h_guest_start(master_t *m, struct http_req *req, const struct api_match *am);
void h_guest_stop(master_t *m, struct http_req *req, const struct api_match *am);
void h_guest_restart(master_t *m, struct http_req *req, const struct api_match *am);
void h_guest_exec(master_t *m, struct http_req *req, const struct api_match *am);
void h_guest_usage(master_t *m, struct http_req *req, const struct api_match *am);
void h_guest_console(master_t *m, struct http_req *req, const struct api_match *am);
void h_guest_traffic(master_t *m, struct http_req *req, const struct api_match *am);
void h_guest_traffic_reset(master_t *m, struct http_req *req, const struct api_match *am);
void h_guest_ip_add(master_t *m, struct http_req *req, const struct api_match *am);
void h_guest_ip_del(master_t *m, struct http_req *req, const struct api_match *am);

/* http_operations.c: operations and the actions that start one */
void h_operations_list(master_t *m, struct http_req *req, const struct api_match *am);
void h_operation_get(master_t *m, struct http_req *req, const struct api_match *am);
void h_operation_cancel(master_t *m, struct http_req *req, const struct api_match *am);
void h_guest_move(master_t *m, struct http_req *req, const struct api_match *am);
void h_node_drain(master_t *m, struct http_req *req, const struct api_match *am);
void h_guest_export(master_t *m, struct http_req *req, const struct api_match *am);
void h_guest_import(master_t *m, struct http_req *req, const struct api_match *am);

/* http_archives.c: archives to upload (import) and download (export) */
void h_archive_create(master_t *m, struct http_req *req, const struct api_match *am);
void h_archive_put(master_t *m, struct http_req *req, const struct api_match *am);
void h_archive_get(master_t *m, struct http_req *req, const struct api_match *am);
void h_archive_delete(master_t *m, struct http_req *req, const struct api_match *am);
/* http_ws.c: interactive sessions over a WebSocket */
void h_guest_shell(master_t *m, struct http_req *req, const struct api_match *am);
/* A browser cannot set Authorization on a WebSocket: its token comes as the
 * subprotocol "bearer.TOKEN" of an upgrade request. Returns "Bearer TOKEN"
 * in buf (n bytes), or NULL when the request carries none. */
const char *http_ws_bearer(struct http_req *req, char *buf, size_t n);

/* http_templates.c */
void h_template_list(master_t *m, struct http_req *req, const struct api_match *am);
void h_template_add(master_t *m, struct http_req *req, const struct api_match *am);
void h_template_delete(master_t *m, struct http_req *req, const struct api_match *am);
void h_template_distribute(master_t *m, struct http_req *req, const struct api_match *am);
void h_guest_rebuild(master_t *m, struct http_req *req, const struct api_match *am);

/* http_pools.c */
void h_pool_list(master_t *m, struct http_req *req, const struct api_match *am);
void h_pool_create(master_t *m, struct http_req *req, const struct api_match *am);
void h_pool_delete(master_t *m, struct http_req *req, const struct api_match *am);

/* http_tokens.c */
void h_token_list(master_t *m, struct http_req *req, const struct api_match *am);
void h_token_create(master_t *m, struct http_req *req, const struct api_match *am);
void h_token_delete(master_t *m, struct http_req *req, const struct api_match *am);

/* http_projects.c */
void h_project_list(master_t *m, struct http_req *req, const struct api_match *am);
void h_project_create(master_t *m, struct http_req *req, const struct api_match *am);
void h_project_get(master_t *m, struct http_req *req, const struct api_match *am);
void h_project_patch(master_t *m, struct http_req *req, const struct api_match *am);
void h_project_delete(master_t *m, struct http_req *req, const struct api_match *am);
/* http_events.c */
void h_events(master_t *m, struct http_req *req, const struct api_match *am);

/* http_usage.c: history and billing */
void http_usage_history(master_t *m, struct http_req *req, const char *name, const char *id);
void h_usage_traffic(master_t *m, struct http_req *req, const struct api_match *am);

/* metrics.c */
void h_metrics(master_t *m, struct http_req *req, const struct api_match *am);
