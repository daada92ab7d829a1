/* The schema of the master's store, as its migrations. */
#include "master/db_int.h"

#include "common/mem.h"

/* Migrations, oldest first. Entry i takes the schema from version i to i + 1;
 * each runs in its own transaction together with the user_version bump, so a
 * crash leaves the file at a whole version. Never edit a released entry:
 * append a new one. */
const char *const db_migrations[DB_SCHEMA_VERSION] = {
    /* 1: the initial schema. */
    "CREATE TABLE nodes ("
    "  name TEXT PRIMARY KEY,"
    "  labels TEXT NOT NULL DEFAULT '{}',"
    "  kernel TEXT NOT NULL DEFAULT '{}',"
    "  cpus INTEGER NOT NULL CHECK (cpus >= 0),"
    "  memory INTEGER NOT NULL CHECK (memory >= 0),"
    "  disk INTEGER NOT NULL CHECK (disk >= 0),"
    "  max_guests INTEGER NOT NULL DEFAULT 0,"
    "  max_addrs INTEGER NOT NULL DEFAULT 0,"
    "  cordoned INTEGER NOT NULL DEFAULT 0 CHECK (cordoned IN (0, 1)),"
    "  state TEXT NOT NULL CHECK (state IN ('ready', 'suspect', 'down')),"
    "  last_seen INTEGER NOT NULL DEFAULT 0,"
    "  created INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE guests ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  node TEXT REFERENCES nodes(name) ON DELETE RESTRICT,"
    "  spec TEXT NOT NULL,"
    "  grp TEXT,"
    "  message TEXT,"
    "  generation INTEGER NOT NULL CHECK (generation >= 1),"
    "  applied_generation INTEGER NOT NULL DEFAULT 0,"
    "  desired TEXT NOT NULL CHECK (desired IN ('running', 'stopped')),"
    "  observed TEXT NOT NULL CHECK (observed IN ('pending', 'running', 'stopped',"
    "    'unknown', 'lost', 'orphan', 'error')),"
    "  created INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL"
    ");"
    "CREATE INDEX guests_node ON guests(node, name);"
    "CREATE INDEX guests_observed ON guests(observed, name);"
    "CREATE TABLE guest_labels ("
    "  key TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  guest_id TEXT NOT NULL REFERENCES guests(id) ON DELETE CASCADE"
    "    DEFERRABLE INITIALLY DEFERRED,"
    "  PRIMARY KEY (key, value, guest_id)"
    ") WITHOUT ROWID;"
    "CREATE INDEX guest_labels_guest ON guest_labels(guest_id);"
    "CREATE TABLE pools ("
    "  name TEXT PRIMARY KEY,"
    "  cidr TEXT NOT NULL,"
    "  gateway TEXT,"
    "  family INTEGER NOT NULL,"
    "  selector TEXT NOT NULL DEFAULT '{}',"
    "  created INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    /* The primary key on the address is the guarantee that one address is
     * never on two guests, whatever the in-memory allocator believes. The
     * guest reference is deferred so a create can allocate addresses before
     * it inserts the guest row, in one transaction. */
    "CREATE TABLE ip_allocs ("
    "  address TEXT PRIMARY KEY,"
    "  pool TEXT NOT NULL REFERENCES pools(name) ON DELETE RESTRICT,"
    "  guest_id TEXT NOT NULL REFERENCES guests(id) ON DELETE CASCADE"
    "    DEFERRABLE INITIALLY DEFERRED,"
    "  created INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX ip_allocs_pool ON ip_allocs(pool);"
    "CREATE INDEX ip_allocs_guest ON ip_allocs(guest_id);"
    "CREATE TABLE idempotency ("
    "  key TEXT PRIMARY KEY,"
    "  method TEXT NOT NULL,"
    "  path TEXT NOT NULL,"
    "  request_hash TEXT NOT NULL,"
    "  status INTEGER NOT NULL,"
    "  body TEXT NOT NULL,"
    "  created INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX idempotency_created ON idempotency(created);",
    /* 2: FreeVPS trafstat semantics. The point a guest's traffic counter was
     * last reset at, as the node's cumulative counters then: the resettable
     * counter is the latest sample minus this mark. */
    "CREATE TABLE traffic_marks ("
    "  guest_id TEXT PRIMARY KEY REFERENCES guests(id) ON DELETE CASCADE,"
    "  rx_bytes INTEGER NOT NULL,"
    "  tx_bytes INTEGER NOT NULL,"
    "  rx_packets INTEGER NOT NULL,"
    "  tx_packets INTEGER NOT NULL,"
    "  since INTEGER NOT NULL"
    ") WITHOUT ROWID;",
    /* 3: a DELETE is recorded before the node is told, so an accepted
     * delete survives a master restart and a full disk refuses it before
     * anything happens on the node. */
    "ALTER TABLE guests ADD COLUMN deleting INTEGER NOT NULL DEFAULT 0 CHECK (deleting IN (0, 1));",
    /* 4: what happened, in order. The sequence number is the row id,
     * AUTOINCREMENT so a number is never reused after the newest rows were
     * deleted: a client resuming after seq N never sees an older event. */
    "CREATE TABLE events ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  time INTEGER NOT NULL,"
    "  type TEXT NOT NULL,"
    "  node TEXT,"
    "  guest_id TEXT,"
    "  guest TEXT,"
    "  message TEXT,"
    "  data TEXT"
    ");"
    "CREATE INDEX events_time ON events(time);",
    /* 5: projects with quotas, the project of every guest (existing guests
     * go to "default") and what each guest is charged to it (NULL until the
     * master charges the rows of older schemas at start), and API tokens,
     * stored as the SHA-256 of the secret. guests.project has no foreign
     * key: SQLite cannot add one with a non-NULL default, and a project is
     * deleted only when no guest is in it (checked in the same transaction). */
    "CREATE TABLE projects ("
    "  name TEXT PRIMARY KEY,"
    "  max_guests INTEGER NOT NULL DEFAULT 0 CHECK (max_guests >= 0),"
    "  max_cpu INTEGER NOT NULL DEFAULT 0 CHECK (max_cpu >= 0),"
    "  max_memory INTEGER NOT NULL DEFAULT 0 CHECK (max_memory >= 0),"
    "  max_disk INTEGER NOT NULL DEFAULT 0 CHECK (max_disk >= 0),"
    "  max_addrs INTEGER NOT NULL DEFAULT 0 CHECK (max_addrs >= 0),"
    "  created INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "INSERT INTO projects (name, created) VALUES ('default', "
    "  CAST(strftime('%s', 'now') AS INTEGER) * 1000);"
    "ALTER TABLE guests ADD COLUMN project TEXT NOT NULL DEFAULT 'default';"
    "ALTER TABLE guests ADD COLUMN charge_cpu INTEGER;"
    "ALTER TABLE guests ADD COLUMN charge_memory INTEGER;"
    "ALTER TABLE guests ADD COLUMN charge_disk INTEGER;"
    "ALTER TABLE guests ADD COLUMN charge_addrs INTEGER;"
    "CREATE INDEX guests_project ON guests(project, name);"
    "CREATE TABLE tokens ("
    "  id TEXT PRIMARY KEY,"
    "  hash TEXT NOT NULL UNIQUE,"
    "  role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'tenant')),"
    "  project TEXT REFERENCES projects(name) ON DELETE RESTRICT,"
    "  description TEXT,"
    "  created INTEGER NOT NULL,"
    "  expires INTEGER NOT NULL DEFAULT 0,"
    "  CHECK ((role = 'tenant') = (project IS NOT NULL))"
    ") WITHOUT ROWID;"
    "CREATE INDEX tokens_project ON tokens(project);",
    /* 6: when the master and a node disagree. node_msgs: what a node's
     * outbox sent and the master stored (by node, request id and a hash of
     * the frame), so a re-send is acknowledged again and not applied twice.
     * orphans: guests a node has that the master does not manage (forgotten
     * with force while the node was unreachable, or never known), with the
     * spec when the master has it. ip_holds: addresses an orphan holds; the
     * triggers keep an address out of both tables at once, so it is never on
     * two guests. pools.cursor: where auto allocation goes on after a
     * restart. */
    "CREATE TABLE node_msgs ("
    "  node TEXT NOT NULL,"
    "  id INTEGER NOT NULL,"
    "  hash INTEGER NOT NULL,"
    "  at INTEGER NOT NULL,"
    "  PRIMARY KEY (node, id)"
    ") WITHOUT ROWID;"
    "CREATE INDEX node_msgs_at ON node_msgs(at);"
    "CREATE TABLE orphans ("
    "  node TEXT NOT NULL,"
    "  id TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  generation INTEGER NOT NULL DEFAULT 0,"
    "  running INTEGER NOT NULL DEFAULT 0 CHECK (running IN (0, 1)),"
    "  seen INTEGER NOT NULL DEFAULT 0 CHECK (seen IN (0, 1)),"
    "  spec TEXT,"
    "  reason TEXT NOT NULL,"
    "  since INTEGER NOT NULL,"
    "  PRIMARY KEY (node, id)"
    ") WITHOUT ROWID;"
    "CREATE TABLE ip_holds ("
    "  address TEXT PRIMARY KEY,"
    "  pool TEXT NOT NULL REFERENCES pools(name) ON DELETE RESTRICT,"
    "  node TEXT NOT NULL,"
    "  guest_id TEXT NOT NULL,"
    "  created INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX ip_holds_guest ON ip_holds(node, guest_id);"
    "CREATE TRIGGER ip_allocs_not_held BEFORE INSERT ON ip_allocs"
    "  WHEN EXISTS (SELECT 1 FROM ip_holds WHERE address = NEW.address)"
    "  BEGIN SELECT RAISE(ABORT, 'address held by an orphan'); END;"
    "CREATE TRIGGER ip_holds_not_allocated BEFORE INSERT ON ip_holds"
    "  WHEN EXISTS (SELECT 1 FROM ip_allocs WHERE address = NEW.address)"
    "  BEGIN SELECT RAISE(ABORT, 'address allocated'); END;"
    "ALTER TABLE pools ADD COLUMN cursor INTEGER NOT NULL DEFAULT 0;",
    /* 7: long actions (move, drain, export, import) with where they stand,
     * so the master's loop drives them on after a restart. */
    "CREATE TABLE operations ("
    "  id TEXT PRIMARY KEY,"
    "  kind TEXT NOT NULL CHECK (kind IN ('move', 'drain', 'export', 'import')),"
    "  parent TEXT,"
    "  guest_id TEXT,"
    "  guest TEXT,"
    "  node TEXT,"
    "  target TEXT,"
    "  state TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed', 'cancelled')),"
    "  step TEXT NOT NULL,"
    "  bytes_done INTEGER NOT NULL DEFAULT 0,"
    "  bytes_total INTEGER NOT NULL DEFAULT 0,"
    "  rate INTEGER NOT NULL DEFAULT 0,"
    "  params TEXT NOT NULL DEFAULT '{}',"
    "  result TEXT,"
    "  error TEXT,"
    "  cancel INTEGER NOT NULL DEFAULT 0 CHECK (cancel IN (0, 1)),"
    "  created INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL,"
    "  finished INTEGER"
    ") WITHOUT ROWID;"
    "CREATE INDEX operations_state ON operations(state, created);"
    "CREATE INDEX operations_created ON operations(created, id);"
    "CREATE INDEX operations_guest ON operations(guest_id);"
    "CREATE INDEX operations_parent ON operations(parent);",
    /* 8: usage history and the FreeVPS context numbers.
     * usage_last is each guest's latest sample (the node's values) and the
     * master's own running counters (never going backwards, across node
     * restarts and moves), as USAGE_N_METRICS unsigned LEB128 varints, and the
     * OOM kill count events were emitted up to (oom_seen); it stays
     * after the guest is deleted (deleted = 1) so its history keeps a name.
     * usage_raw holds samples (gauges as measured, counters as the increase
     * since the guest's previous sample), keyed by time first so a round of
     * samples appends to a few pages (a guest's raw rows are read only for
     * the last hour: a scan of that hour), usage_1m and usage_1h rollups
     * (n samples; gauges min, max and sum; counters the increase), each
     * keyed by the start of its period.
     * The columns follow proto/usage.h's USAGE_U64_FIELDS and failcnt
     * (db_usage.c checks them at open). Guests get a context number from 3
     * in creation order; the unique index guards it. */
    "CREATE TABLE usage_last ("
    "  guest_id TEXT PRIMARY KEY, name TEXT NOT NULL, node TEXT, time INTEGER NOT NULL,"
    "  sample BLOB NOT NULL, totals BLOB NOT NULL, oom_seen INTEGER NOT NULL DEFAULT 0,"
    "  deleted INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1))"
    ") WITHOUT ROWID;"
    "CREATE TABLE usage_raw ("
    "  guest_id TEXT NOT NULL, time INTEGER NOT NULL,"
    "  cpu_ns INTEGER, memory INTEGER, memory_peak INTEGER, rss INTEGER,"
    "  swap INTEGER, procs INTEGER, disk_bytes INTEGER, disk_inodes INTEGER,"
    "  io_read_bytes INTEGER, io_write_bytes INTEGER, io_read_ops INTEGER,"
    "  io_write_ops INTEGER, net_rx_bytes INTEGER, net_tx_bytes INTEGER,"
    "  net_rx_packets INTEGER, net_tx_packets INTEGER, tcp_sockets INTEGER,"
    "  failcnt_procs INTEGER, failcnt_memory INTEGER, failcnt_oom INTEGER,"
    "  failcnt_disk INTEGER, failcnt_tcp INTEGER,"
    "  PRIMARY KEY (time, guest_id)"
    ") WITHOUT ROWID;"
    "CREATE TABLE usage_1m ("
    "  guest_id TEXT NOT NULL, time INTEGER NOT NULL, n INTEGER NOT NULL,"
    "  cpu_ns INTEGER, memory_min INTEGER, memory_max INTEGER, memory_sum INTEGER,"
    "  memory_peak_min INTEGER, memory_peak_max INTEGER, memory_peak_sum INTEGER,"
    "  rss_min INTEGER, rss_max INTEGER, rss_sum INTEGER, swap_min INTEGER,"
    "  swap_max INTEGER, swap_sum INTEGER, procs_min INTEGER, procs_max INTEGER,"
    "  procs_sum INTEGER, disk_bytes_min INTEGER, disk_bytes_max INTEGER,"
    "  disk_bytes_sum INTEGER, disk_inodes_min INTEGER, disk_inodes_max INTEGER,"
    "  disk_inodes_sum INTEGER, io_read_bytes INTEGER, io_write_bytes INTEGER,"
    "  io_read_ops INTEGER, io_write_ops INTEGER, net_rx_bytes INTEGER,"
    "  net_tx_bytes INTEGER, net_rx_packets INTEGER, net_tx_packets INTEGER,"
    "  tcp_sockets_min INTEGER, tcp_sockets_max INTEGER, tcp_sockets_sum INTEGER,"
    "  failcnt_procs INTEGER, failcnt_memory INTEGER, failcnt_oom INTEGER,"
    "  failcnt_disk INTEGER, failcnt_tcp INTEGER,"
    "  PRIMARY KEY (guest_id, time)"
    ") WITHOUT ROWID;"
    "CREATE INDEX usage_1m_time ON usage_1m(time);"
    "CREATE TABLE usage_1h ("
    "  guest_id TEXT NOT NULL, time INTEGER NOT NULL, n INTEGER NOT NULL,"
    "  cpu_ns INTEGER, memory_min INTEGER, memory_max INTEGER, memory_sum INTEGER,"
    "  memory_peak_min INTEGER, memory_peak_max INTEGER, memory_peak_sum INTEGER,"
    "  rss_min INTEGER, rss_max INTEGER, rss_sum INTEGER, swap_min INTEGER,"
    "  swap_max INTEGER, swap_sum INTEGER, procs_min INTEGER, procs_max INTEGER,"
    "  procs_sum INTEGER, disk_bytes_min INTEGER, disk_bytes_max INTEGER,"
    "  disk_bytes_sum INTEGER, disk_inodes_min INTEGER, disk_inodes_max INTEGER,"
    "  disk_inodes_sum INTEGER, io_read_bytes INTEGER, io_write_bytes INTEGER,"
    "  io_read_ops INTEGER, io_write_ops INTEGER, net_rx_bytes INTEGER,"
    "  net_tx_bytes INTEGER, net_rx_packets INTEGER, net_tx_packets INTEGER,"
    "  tcp_sockets_min INTEGER, tcp_sockets_max INTEGER, tcp_sockets_sum INTEGER,"
    "  failcnt_procs INTEGER, failcnt_memory INTEGER, failcnt_oom INTEGER,"
    "  failcnt_disk INTEGER, failcnt_tcp INTEGER,"
    "  PRIMARY KEY (guest_id, time)"
    ") WITHOUT ROWID;"
    "CREATE INDEX usage_1h_time ON usage_1h(time);"
    "UPDATE guests SET spec = json_set(spec, '$.context', 2 + (SELECT COUNT(*) FROM guests g"
    "  WHERE g.created < guests.created OR (g.created = guests.created AND g.id <= guests.id)));"
    "CREATE UNIQUE INDEX guests_context ON guests(json_extract(spec, '$.context'));",

    /* 9: the project of a guest's event, kept when the guest is gone (a
     * tenant reads its project's events). Existing events of live guests
     * get their guest's. */
    "ALTER TABLE events ADD COLUMN project TEXT;"
    "UPDATE events SET project = (SELECT project FROM guests WHERE guests.id = events.guest_id)"
    "  WHERE guest_id IS NOT NULL;",
    /* 10: the node link's trust (docs/protocol-transport.md, "Joining"). A
     * node's CurveZMQ public key, one per node and never shared; and the
     * join tokens, stored by their public key, which is a one-way function
     * of the token's secret (as a hash would be): the table does not give a
     * token away. */
    "CREATE TABLE node_keys ("
    "  name TEXT PRIMARY KEY,"
    "  public_key TEXT NOT NULL UNIQUE,"
    "  token TEXT,"
    "  created INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE join_tokens ("
    "  id TEXT PRIMARY KEY,"
    "  public_key TEXT NOT NULL UNIQUE,"
    "  node TEXT,"
    "  created INTEGER NOT NULL,"
    "  expires INTEGER NOT NULL,"
    "  used_by TEXT,"
    "  used_at INTEGER"
    ") WITHOUT ROWID;"
    "CREATE INDEX join_tokens_expires ON join_tokens(expires);",
    /* 11: an operation of kind "template" (a template fetched to a node,
     * master/op_template.c): SQLite changes a CHECK only by copying the table. */
    "CREATE TABLE operations_new ("
    "  id TEXT PRIMARY KEY,"
    "  kind TEXT NOT NULL CHECK (kind IN ('move', 'drain', 'export', 'import', 'template')),"
    "  parent TEXT,"
    "  guest_id TEXT,"
    "  guest TEXT,"
    "  node TEXT,"
    "  target TEXT,"
    "  state TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed', 'cancelled')),"
    "  step TEXT NOT NULL,"
    "  bytes_done INTEGER NOT NULL DEFAULT 0,"
    "  bytes_total INTEGER NOT NULL DEFAULT 0,"
    "  rate INTEGER NOT NULL DEFAULT 0,"
    "  params TEXT NOT NULL DEFAULT '{}',"
    "  result TEXT,"
    "  error TEXT,"
    "  cancel INTEGER NOT NULL DEFAULT 0 CHECK (cancel IN (0, 1)),"
    "  created INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL,"
    "  finished INTEGER"
    ") WITHOUT ROWID;"
    "INSERT INTO operations_new SELECT id, kind, parent, guest_id, guest, node, target, state,"
    "  step, bytes_done, bytes_total, rate, params, result, error, cancel, created, updated,"
    "  finished FROM operations;"
    "DROP TABLE operations;"
    "ALTER TABLE operations_new RENAME TO operations;"
    "CREATE INDEX operations_state ON operations(state, created);"
    "CREATE INDEX operations_created ON operations(created, id);"
    "CREATE INDEX operations_guest ON operations(guest_id);"
    "CREATE INDEX operations_parent ON operations(parent);",

    /* 12: billing per project: usage_last keeps the guest's project, which
     * stays after the guest is deleted, as its name does (unknown, NULL,
     * for a guest deleted before this version). */
    "ALTER TABLE usage_last ADD COLUMN project TEXT;"
    "UPDATE usage_last SET project = (SELECT project FROM guests WHERE guests.id = "
    "usage_last.guest_id);",
    /* 13: context numbers unique per node, not in the whole cluster (which
     * capped a cluster at 65,533 guests): the number is only used on its
     * node (the FreeVPS views), as a FreeVPS context or an OpenVZ CTID is a
     * per-host number. Numbers unique in the cluster are unique per node, so
     * existing rows need no change. A guest without a node (NULL) is in no
     * node's range (NULLs are distinct in a unique index). */
    ("DROP INDEX guests_context;"
     "CREATE UNIQUE INDEX guests_node_context ON guests(node, json_extract(spec, '$.context'));"),
    /* 14: the idempotency records in a rowid table. WITHOUT ROWID kept each
     * whole row, the stored reply (~800 KB for a 1,000-guest batch) with it,
     * in the key's b-tree, and SQLite compares a search key with a cell
     * whose payload overflows its page by reading the whole payload into a
     * new buffer: every lookup of a key, and the insert of each batch's
     * record, read several stored replies (1.2 of 1.3 ms per lookup and 0.6
     * of 2.6 ms per insert with 300 records of 800 KB, each buffer a fresh
     * mmap above glibc's threshold). Now the key's index holds the key and
     * a rowid, and a reply is only read when it is replayed. */
    "CREATE TABLE idempotency_new ("
    "  key TEXT PRIMARY KEY,"
    "  method TEXT NOT NULL,"
    "  path TEXT NOT NULL,"
    "  request_hash TEXT NOT NULL,"
    "  status INTEGER NOT NULL,"
    "  body TEXT NOT NULL,"
    "  created INTEGER NOT NULL"
    ");"
    "INSERT INTO idempotency_new (key, method, path, request_hash, status, body, created)"
    "  SELECT key, method, path, request_hash, status, body, created FROM idempotency;"
    "DROP TABLE idempotency;"
    "ALTER TABLE idempotency_new RENAME TO idempotency;"
    "CREATE INDEX idempotency_created ON idempotency(created);",
};

_Static_assert(ARRAY_SIZE(db_migrations) == DB_SCHEMA_VERSION,
               "DB_SCHEMA_VERSION must be the number of migrations");
