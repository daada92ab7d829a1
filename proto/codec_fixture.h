/* What the codec tests share (codec_test.c, codec_reject_test.c): a filled
 * message of every type, comparison, and a builder of hand-made frames.
 * Static helpers, included by each test program. */
#pragma once
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <msgpack.h>
#include <stdio.h>

#include "common/mem.h"
#include "common/sanitizer.h"
#include "proto/msg.h"

#define UUID1 "0f8fad5b-d9cb-469f-a165-70867728950e"
#define UUID2 "7c9e6679-7425-40de-944b-e07fc1f90ae7"

#define FX_UNUSED __attribute__((unused))

/* ------------------------------------------------------------ fixtures */

FX_UNUSED static void
fill_spec(struct guest_spec *s)
{
    memset(s, 0, sizeof(*s));
    strcpy(s->id, UUID1);
    strcpy(s->name, "web1");
    s->generation = 7;
    strcpy(s->template_name, "debian-12");
    strcpy(s->init, "/sbin/init");
    strcpy(s->domainname, "example.org");
    s->halt_signal = 37;
    s->stop_timeout = 45;
    s->flags = SPEC_FLAG_PRIVATE | SPEC_FLAG_LOCK;
    s->autostart = true;
    s->restart = SPEC_RESTART_ON_FAILURE;
    s->restart_max = 5;
    s->restart_backoff = 10;
    s->limits = (struct spec_limits){
        .procs = 512,
        .memory = 1ULL << 30,
        .rss = 512ULL << 20,
        .swap = 256ULL << 20,
        .cpu_weight = 7777,
        .cpu_max = 2000,
        .cpu_burst = 500,
        .io_weight = 300,
        .disk = 10ULL << 30,
        .inodes = 655360,
        .nofile = 65536,
        .tcp_sockets = 1000,
        .net_in = 100000000,
        .net_out = 50000000,
        .n_io_devs = 2,
    };
    s->limits.io_devs[0] = (struct spec_io_dev){8, 0, 1, 2, 3, 4};
    s->limits.io_devs[1] = (struct spec_io_dev){253, 1, 1ULL << 40, 5, 6, UINT64_MAX};
    s->caps_add = (1ULL << spec_cap_from_name("net_admin")) | (1ULL << 39);
    s->caps_drop = 1ULL << spec_cap_from_name("mknod");
    s->n_addrs = 3;
    assert_int_equal(netaddr_parse("10.0.0.5/32", &s->addrs[0]), 0);
    assert_int_equal(netaddr_parse("2001:db8::5/128", &s->addrs[1]), 0);
    assert_int_equal(netaddr_parse("192.0.2.0/24", &s->addrs[2]), 0);
    s->n_labels = 2;
    strcpy(s->provision.password_hash, "$6$saltsalt$0123456789abcdefghijklmnopqrstuvwxyz");
    strcpy(s->provision.ssh_keys, "ssh-ed25519 AAAAC3Nza me@x\nssh-rsa AAAAB3Nza ops");
    assert_int_equal(netaddr_parse("192.0.2.53", &s->provision.dns[0]), 0);
    s->provision.n_dns = 1;
    s->rebuild = 3;
    strcpy(s->provision.search, "example.org corp.example");
    strcpy(s->labels[0].key, "tier");
    strcpy(s->labels[0].value, "front end");
    strcpy(s->labels[1].key, "owner");
    strcpy(s->labels[1].value, "ops@example.org");
}

#define SECRET64 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define DIGEST64 "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"

/* The fields a migrate command of type t carries (codec.c's tables); the
 * rest stay zero so a whole-struct comparison holds after a round trip. */
FX_UNUSED static void
fill_migrate(struct msg_migrate *mg, enum msg_type t)
{
    strcpy(mg->op, UUID2);
    strcpy(mg->id, UUID1);
    if (t == MSG_MIGRATE_PREPARE || t == MSG_MIGRATE_SEND) {
        strcpy(mg->peer, "h3");
        strcpy(mg->secret, SECRET64);
        strcpy(mg->peer_key, "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7");
        mg->live = true;
    }
    if (t == MSG_MIGRATE_PREPARE || t == MSG_MIGRATE_COMMIT)
        fill_spec(&mg->spec);
    if (t == MSG_MIGRATE_ABORT)
        strcpy(mg->role, "source");
    if (t == MSG_MIGRATE_SEND)
        strcpy(mg->endpoint, "tcp://10.87.255.3:40123");
    if (t == MSG_MIGRATE_COMMIT) {
        strcpy(mg->digest, DIGEST64);
        mg->counters = (struct msg_migrate_counters){1, 2, 3, 4, 5};
    }
    if (t == MSG_MIGRATE_COMMIT || t == MSG_MIGRATE_ABORT)
        mg->start = true;
    if (t == MSG_MIGRATE_SEND || t == MSG_MIGRATE_COMMIT)
        mg->archive = true;
}

FX_UNUSED static void
fill_migrate_status(struct msg_migrate_status *st)
{
    st->ref = 77;
    strcpy(st->op, UUID2);
    strcpy(st->id, UUID1);
    strcpy(st->phase, "send");
    strcpy(st->state, "done");
    strcpy(st->code, "internal");
    strcpy(st->message, "sent 3 chunks");
    strcpy(st->endpoint, "ipc:///run/vfleet/x.sock");
    strcpy(st->key, "");
    st->pass = 2;
    st->bytes_done = 1000;
    st->bytes_total = 4096;
    strcpy(st->digest, DIGEST64);
    st->frozen_ms = 1795000000000ULL;
    st->running_ms = 1795000000123ULL;
    st->copy_ms = 4321;
    st->last_bytes = 52428800;
    st->running = true;
    st->counters = (struct msg_migrate_counters){10, 20, 30, 40, 50};
    strcpy(st->note, "criu check failed: vdso");
}

/* One fully populated message of type t. */
FX_UNUSED static void
fill(struct msg *m, enum msg_type t)
{
    memset(m, 0, sizeof(*m));
    m->type = t;
    m->id = 0x1122334455667788ULL;
    switch (t) {
    case MSG_HELLO: {
        struct msg_hello *h = &m->u.hello;
        strcpy(h->node, "h2");
        strcpy(h->agent_version, "0.1.0");
        strcpy(h->kernel, "6.1.0-13-amd64");
        strcpy(h->cgroup, "hybrid");
        strcpy(h->backend, "linux");
        h->cpus = 16000;
        h->memory = 64ULL << 30;
        h->disk = 2ULL << 40;
        h->max_guests = 200;
        h->n_labels = 2;
        strcpy(h->labels[0].key, "rack");
        strcpy(h->labels[0].value, "r12");
        strcpy(h->labels[1].key, "ssd");
        strcpy(h->labels[1].value, "yes");
        h->n_templates = 2;
        strcpy(h->templates[0].name, "busybox");
        strcpy(h->templates[1].name, "debian-12");
        h->templates[1].size = 312345678;
        strcpy(h->templates[1].checksum,
               "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
        h->n_inventory = 2;
        h->inventory = xcalloc(2, sizeof(*h->inventory));
        strcpy(h->inventory[0].id, UUID1);
        strcpy(h->inventory[0].name, "web1");
        h->inventory[0].generation = 7;
        h->inventory[0].running = true;
        strcpy(h->inventory[0].desired, "running");
        strcpy(h->inventory[1].id, UUID2);
        strcpy(h->inventory[1].name, "db1");
        h->inventory[1].generation = UINT64_MAX;
        strcpy(h->inventory[1].desired, "stopped");
        h->leftovers = 3;
        h->has_leftovers = true;
        break;
    }
    case MSG_INVENTORY: {
        struct msg_inventory *v = &m->u.inventory;
        v->ref = 77;
        v->n_inventory = 1;
        v->inventory = xcalloc(1, sizeof(*v->inventory));
        strcpy(v->inventory[0].id, UUID1);
        strcpy(v->inventory[0].name, "web1");
        v->inventory[0].generation = 7;
        fill_spec(&v->spec);
        break;
    }
    case MSG_INVENTORY_GET:
        strcpy(m->u.inventory_get.id, UUID2);
        break;
    case MSG_HEARTBEAT:
        m->u.heartbeat = (struct msg_heartbeat){
            .seq = 99, .n_guests = 10, .n_running = 4, .digest = 0xfedcba9876543210ULL};
        break;
    case MSG_ACK:
        m->u.ack.ref = 41;
        strcpy(m->u.ack.id, UUID2);
        m->u.ack.generation = 8;
        m->u.ack.running = true;
        break;
    case MSG_NACK:
        m->u.nack.ref = 42;
        strcpy(m->u.nack.id, UUID1);
        m->u.nack.code = MSG_ERR_STALE;
        strcpy(m->u.nack.message, "generation 3 is older than 7\n(applied)");
        break;
    case MSG_USAGE:
        m->u.usage.n_samples = 2;
        m->u.usage.samples = xcalloc(2, sizeof(struct guest_usage));
        for (unsigned i = 0; i < 2; i++) {
            struct guest_usage *u = &m->u.usage.samples[i];
            strcpy(u->id, i ? UUID2 : UUID1);
            uint64_t *f = &u->time_ms;
            /* Every counter from time_ms to tcp_sockets gets a distinct value. */
            for (uint64_t *p = f; p <= &u->tcp_sockets; p++)
                *p = 1000 * (i + 1) + (uint64_t)(p - f);
            for (unsigned k = 0; k < USAGE_FAIL_COUNT; k++)
                u->failcnt[k] = 10 + k + i;
        }
        break;
    case MSG_TRAFFIC_GET:
        m->u.traffic_get.reset = true;
        break;
    case MSG_TRAFFIC:
        m->u.traffic.ref = 77;
        m->u.traffic.n_items = 2;
        m->u.traffic.items = xcalloc(2, sizeof(struct msg_traffic_item));
        for (unsigned i = 0; i < 2; i++) {
            struct msg_traffic_item *it = &m->u.traffic.items[i];
            strcpy(it->id, i ? UUID2 : UUID1);
            it->rx_bytes = 1000 + i;
            it->tx_bytes = 2000 + i;
            it->rx_packets = 10 + i;
            it->tx_packets = 20 + i;
        }
        break;
    case MSG_EVENT:
        strcpy(m->u.event.id, UUID1);
        strcpy(m->u.event.kind, "exited");
        m->u.event.time_ms = 1795000000000ULL;
        m->u.event.exit_code = -1;
        strcpy(m->u.event.message, "killed by signal 9");
        m->u.event.signal = 9;
        strcpy(m->u.event.desired, "stopped");
        m->u.event.count = 2;
        break;
    case MSG_EXEC_RESULT: {
        struct msg_exec_result *r = &m->u.exec_result;
        r->ref = 43;
        strcpy(r->id, UUID2);
        r->exit_code = 3;
        r->signal = 0;
        r->timed_out = true;
        r->truncated = true;
        r->out_len = 5;
        r->out = xmalloc(5);
        memcpy(r->out, "a\0b\xff\n", 5);
        r->err_len = 3;
        r->err = xmalloc(3);
        memcpy(r->err, "err", 3);
        break;
    }
    case MSG_WELCOME:
        m->u.welcome = (struct msg_welcome){.heartbeat_ms = 5000, .usage_ms = 30000, .ref = 3};
        break;
    case MSG_GUEST_APPLY:
    case MSG_GUEST_APPLY_START:
        fill_spec(&m->u.apply);
        break;
    case MSG_GUEST_START:
    case MSG_GUEST_STOP:
    case MSG_GUEST_DESTROY:
        strcpy(m->u.guest.id, UUID1);
        m->u.guest.generation = 7;
        m->u.guest.timeout = t == MSG_GUEST_STOP ? 60 : 0;
        break;
    case MSG_GUEST_EXEC:
        strcpy(m->u.exec.id, UUID1);
        m->u.exec.argc = 3;
        m->u.exec.argv = xcalloc(4, sizeof(char *));
        m->u.exec.argv[0] = xstrdup("/bin/sh");
        m->u.exec.argv[1] = xstrdup("-c");
        m->u.exec.argv[2] = xstrdup("echo 'hi there'; exit 3");
        m->u.exec.timeout_ms = 10000;
        m->u.exec.max_output = 4096;
        break;
    case MSG_MIGRATE_PREPARE:
    case MSG_MIGRATE_SEND:
    case MSG_MIGRATE_COMMIT:
    case MSG_MIGRATE_FINISH:
    case MSG_MIGRATE_ABORT:
        fill_migrate(&m->u.migrate, t);
        break;
    case MSG_MIGRATE_STATUS:
        fill_migrate_status(&m->u.migrate_status);
        break;
    case MSG_SHELL_OPEN:
        strcpy(m->u.shell.id, UUID1);
        m->u.shell.session = 9;
        m->u.shell.argc = 1;
        m->u.shell.argv = xcalloc(2, sizeof(char *));
        m->u.shell.argv[0] = xstrdup("/bin/bash");
        m->u.shell.tty = true;
        m->u.shell.cols = 132;
        m->u.shell.rows = 43;
        strcpy(m->u.shell.term, "xterm-256color");
        m->u.shell.console = true;
        break;
    case MSG_STREAM_CTL:
        m->u.stream_ctl = (struct msg_stream_ctl){
            .session = 9, .cols = 80, .rows = 24, .signal = 2, .close = true};
        break;
    case MSG_STREAM_DATA:
        m->u.stream_data.session = 9;
        m->u.stream_data.fd = 2;
        m->u.stream_data.eof = true;
        m->u.stream_data.len = 4;
        m->u.stream_data.data = xmalloc(4);
        memcpy(m->u.stream_data.data, "\x1b[A\0", 4);
        break;
    case MSG_STREAM_ACK:
        m->u.stream_ack = (struct msg_stream_ack){.session = 9, .bytes = 4096};
        break;
    case MSG_STREAM_EXIT:
        m->u.stream_exit.session = 9;
        m->u.stream_exit.exit_code = -1;
        m->u.stream_exit.signal = 9;
        strcpy(m->u.stream_exit.message, "killed");
        break;
    case MSG_JOIN:
        strcpy(m->u.join.node, "node-7");
        strcpy(m->u.join.key, "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7");
        break;
    case MSG_GUEST_CONSOLE:
        strcpy(m->u.console.id, UUID1);
        m->u.console.max_bytes = 65536;
        break;
    case MSG_CONSOLE_RESULT:
        m->u.console_result.ref = 44;
        strcpy(m->u.console_result.id, UUID2);
        m->u.console_result.total = 1ULL << 33;
        m->u.console_result.len = 4;
        m->u.console_result.data = xmalloc(4);
        memcpy(m->u.console_result.data, "ok\0\n", 4);
        break;
    default:
        fail();
    }
}

/* ------------------------------------------------------------ compare */

#define EQ_U(f)   assert_true(a->f == b->f)
#define EQ_S(f)   assert_string_equal(a->f, b->f)
#define EQ_MEM(f) assert_memory_equal(&a->f, &b->f, sizeof(a->f))

FX_UNUSED static void
cmp_labels(const struct spec_label *a, const struct spec_label *b, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        assert_string_equal(a[i].key, b[i].key);
        assert_string_equal(a[i].value, b[i].value);
    }
}

FX_UNUSED static void
cmp_spec(const struct guest_spec *a, const struct guest_spec *b)
{
    EQ_S(id);
    EQ_S(name);
    EQ_U(generation);
    EQ_S(template_name);
    EQ_S(init);
    EQ_S(domainname);
    EQ_U(halt_signal);
    EQ_U(stop_timeout);
    EQ_U(flags);
    EQ_U(autostart);
    EQ_U(restart);
    EQ_U(restart_max);
    EQ_U(restart_backoff);
    EQ_U(limits.procs);
    EQ_U(limits.memory);
    EQ_U(limits.rss);
    EQ_U(limits.swap);
    EQ_U(limits.cpu_weight);
    EQ_U(limits.cpu_max);
    EQ_U(limits.cpu_burst);
    EQ_U(limits.io_weight);
    EQ_U(limits.disk);
    EQ_U(limits.inodes);
    EQ_U(limits.nofile);
    EQ_U(limits.tcp_sockets);
    EQ_U(limits.net_in);
    EQ_U(limits.net_out);
    EQ_U(limits.n_io_devs);
    for (uint32_t i = 0; i < a->limits.n_io_devs; i++) {
        EQ_U(limits.io_devs[i].major);
        EQ_U(limits.io_devs[i].minor);
        EQ_U(limits.io_devs[i].read_bps);
        EQ_U(limits.io_devs[i].write_bps);
        EQ_U(limits.io_devs[i].read_iops);
        EQ_U(limits.io_devs[i].write_iops);
    }
    EQ_U(caps_add);
    EQ_U(caps_drop);
    EQ_U(rebuild);
    EQ_S(provision.password_hash);
    EQ_S(provision.ssh_keys);
    EQ_S(provision.search);
    EQ_U(provision.n_dns);
    EQ_MEM(provision.dns[0].bytes);
    EQ_U(n_addrs);
    for (uint32_t i = 0; i < a->n_addrs; i++) {
        EQ_U(addrs[i].family);
        EQ_U(addrs[i].prefix);
        EQ_MEM(addrs[i].bytes);
    }
    EQ_U(n_labels);
    cmp_labels(a->labels, b->labels, a->n_labels);
}

FX_UNUSED static void
cmp_msg(const struct msg *x, const struct msg *y)
{
    assert_int_equal(x->type, y->type);
    assert_true(x->id == y->id);
    switch (x->type) {
    case MSG_HELLO: {
        const struct msg_hello *a = &x->u.hello, *b = &y->u.hello;
        EQ_S(node);
        EQ_S(agent_version);
        EQ_S(kernel);
        EQ_S(cgroup);
        EQ_S(backend);
        EQ_U(cpus);
        EQ_U(memory);
        EQ_U(disk);
        EQ_U(max_guests);
        EQ_U(n_labels);
        cmp_labels(a->labels, b->labels, a->n_labels);
        EQ_U(n_templates);
        for (uint32_t i = 0; i < a->n_templates; i++) {
            EQ_S(templates[i].name);
            EQ_U(templates[i].size);
            EQ_S(templates[i].checksum);
        }
        EQ_U(n_inventory);
        for (uint32_t i = 0; i < a->n_inventory; i++) {
            EQ_S(inventory[i].id);
            EQ_S(inventory[i].name);
            EQ_U(inventory[i].generation);
            EQ_U(inventory[i].running);
            EQ_S(inventory[i].desired);
        }
        EQ_U(leftovers);
        EQ_U(has_leftovers);
        break;
    }
    case MSG_INVENTORY: {
        const struct msg_inventory *a = &x->u.inventory, *b = &y->u.inventory;
        EQ_U(ref);
        EQ_U(n_inventory);
        for (uint32_t i = 0; i < a->n_inventory; i++) {
            EQ_S(inventory[i].id);
            EQ_U(inventory[i].generation);
        }
        cmp_spec(&a->spec, &b->spec);
        break;
    }
    case MSG_INVENTORY_GET:
        assert_string_equal(x->u.inventory_get.id, y->u.inventory_get.id);
        break;
    case MSG_HEARTBEAT: {
        const struct msg_heartbeat *a = &x->u.heartbeat, *b = &y->u.heartbeat;
        EQ_U(seq);
        EQ_U(n_guests);
        EQ_U(n_running);
        EQ_U(digest);
        break;
    }
    case MSG_WELCOME: {
        const struct msg_welcome *a = &x->u.welcome, *b = &y->u.welcome;
        EQ_U(heartbeat_ms);
        EQ_U(usage_ms);
        EQ_U(ref);
        break;
    }
    case MSG_ACK: {
        const struct msg_ack *a = &x->u.ack, *b = &y->u.ack;
        EQ_U(ref);
        EQ_S(id);
        EQ_U(generation);
        EQ_U(running);
        break;
    }
    case MSG_NACK: {
        const struct msg_nack *a = &x->u.nack, *b = &y->u.nack;
        EQ_U(ref);
        EQ_S(id);
        EQ_U(code);
        EQ_S(message);
        break;
    }
    case MSG_USAGE: {
        const struct msg_usage *a = &x->u.usage, *b = &y->u.usage;
        EQ_U(n_samples);
        for (uint32_t i = 0; i < a->n_samples; i++) {
            EQ_S(samples[i].id);
            EQ_U(samples[i].time_ms);
            EQ_U(samples[i].cpu_ns);
            EQ_U(samples[i].memory);
            EQ_U(samples[i].memory_peak);
            EQ_U(samples[i].rss);
            EQ_U(samples[i].swap);
            EQ_U(samples[i].procs);
            EQ_U(samples[i].disk_bytes);
            EQ_U(samples[i].disk_inodes);
            EQ_U(samples[i].io_read_bytes);
            EQ_U(samples[i].io_write_bytes);
            EQ_U(samples[i].io_read_ops);
            EQ_U(samples[i].io_write_ops);
            EQ_U(samples[i].net_rx_bytes);
            EQ_U(samples[i].net_tx_bytes);
            EQ_U(samples[i].net_rx_packets);
            EQ_U(samples[i].net_tx_packets);
            EQ_U(samples[i].tcp_sockets);
            EQ_MEM(samples[i].failcnt);
        }
        break;
    }
    case MSG_TRAFFIC_GET: {
        const struct msg_traffic_get *a = &x->u.traffic_get, *b = &y->u.traffic_get;
        EQ_U(reset);
        break;
    }
    case MSG_TRAFFIC: {
        const struct msg_traffic *a = &x->u.traffic, *b = &y->u.traffic;
        EQ_U(ref);
        EQ_U(n_items);
        for (uint32_t i = 0; i < a->n_items; i++) {
            EQ_S(items[i].id);
            EQ_U(items[i].rx_bytes);
            EQ_U(items[i].tx_bytes);
            EQ_U(items[i].rx_packets);
            EQ_U(items[i].tx_packets);
        }
        break;
    }
    case MSG_EVENT: {
        const struct msg_event *a = &x->u.event, *b = &y->u.event;
        EQ_S(id);
        EQ_S(kind);
        EQ_U(time_ms);
        EQ_U(exit_code);
        EQ_S(message);
        EQ_U(signal);
        EQ_S(desired);
        EQ_U(count);
        break;
    }
    case MSG_EXEC_RESULT: {
        const struct msg_exec_result *a = &x->u.exec_result, *b = &y->u.exec_result;
        EQ_U(ref);
        EQ_S(id);
        EQ_U(exit_code);
        EQ_U(signal);
        EQ_U(timed_out);
        EQ_U(truncated);
        EQ_U(out_len);
        assert_memory_equal(a->out, b->out, a->out_len);
        EQ_U(err_len);
        assert_memory_equal(a->err, b->err, a->err_len);
        break;
    }
    case MSG_GUEST_APPLY:
    case MSG_GUEST_APPLY_START:
        cmp_spec(&x->u.apply, &y->u.apply);
        break;
    case MSG_GUEST_START:
    case MSG_GUEST_STOP:
    case MSG_GUEST_DESTROY: {
        const struct msg_guest_ref *a = &x->u.guest, *b = &y->u.guest;
        EQ_S(id);
        EQ_U(generation);
        EQ_U(timeout);
        break;
    }
    case MSG_GUEST_EXEC: {
        const struct msg_guest_exec *a = &x->u.exec, *b = &y->u.exec;
        EQ_S(id);
        EQ_U(argc);
        for (uint32_t i = 0; i < a->argc; i++)
            EQ_S(argv[i]);
        assert_null(b->argv[b->argc]);
        EQ_U(timeout_ms);
        EQ_U(max_output);
        break;
    }
    case MSG_MIGRATE_PREPARE:
    case MSG_MIGRATE_COMMIT:
        cmp_spec(&x->u.migrate.spec, &y->u.migrate.spec);
        assert_memory_equal(&x->u.migrate, &y->u.migrate, offsetof(struct msg_migrate, spec));
        break;
    case MSG_MIGRATE_SEND:
    case MSG_MIGRATE_FINISH:
    case MSG_MIGRATE_ABORT:
        assert_memory_equal(&x->u.migrate, &y->u.migrate, sizeof(x->u.migrate));
        break;
    case MSG_MIGRATE_STATUS:
        assert_memory_equal(&x->u.migrate_status, &y->u.migrate_status,
                            sizeof(x->u.migrate_status));
        break;
    case MSG_SHELL_OPEN: {
        const struct msg_shell_open *a = &x->u.shell, *b = &y->u.shell;
        EQ_S(id);
        EQ_U(session);
        EQ_U(argc);
        for (uint32_t i = 0; i < a->argc; i++)
            EQ_S(argv[i]);
        EQ_U(tty);
        EQ_U(cols);
        EQ_U(rows);
        EQ_S(term);
        EQ_U(console);
        break;
    }
    case MSG_STREAM_CTL: {
        const struct msg_stream_ctl *a = &x->u.stream_ctl, *b = &y->u.stream_ctl;
        EQ_U(session);
        EQ_U(cols);
        EQ_U(rows);
        EQ_U(signal);
        EQ_U(close);
        break;
    }
    case MSG_STREAM_DATA: {
        const struct msg_stream_data *a = &x->u.stream_data, *b = &y->u.stream_data;
        EQ_U(session);
        EQ_U(fd);
        EQ_U(eof);
        EQ_U(len);
        assert_memory_equal(a->data, b->data, a->len);
        break;
    }
    case MSG_JOIN: {
        const struct msg_join *a = &x->u.join, *b = &y->u.join;
        EQ_S(node);
        EQ_S(key);
        break;
    }
    case MSG_GUEST_CONSOLE: {
        const struct msg_guest_console *a = &x->u.console, *b = &y->u.console;
        EQ_S(id);
        EQ_U(max_bytes);
        break;
    }
    case MSG_CONSOLE_RESULT: {
        const struct msg_console_result *a = &x->u.console_result, *b = &y->u.console_result;
        EQ_U(ref);
        EQ_S(id);
        EQ_U(total);
        EQ_U(len);
        assert_memory_equal(a->data, b->data, a->len);
        break;
    }
    case MSG_STREAM_ACK: {
        const struct msg_stream_ack *a = &x->u.stream_ack, *b = &y->u.stream_ack;
        EQ_U(session);
        EQ_U(bytes);
        break;
    }
    case MSG_STREAM_EXIT: {
        const struct msg_stream_exit *a = &x->u.stream_exit, *b = &y->u.stream_exit;
        EQ_U(session);
        EQ_U(exit_code);
        EQ_U(signal);
        EQ_S(message);
        break;
    }
    default:
        fail();
    }
}

/* ------------------------------------------------------------ frame builder */

/* A frame assembled by hand, for inputs our encoder would never produce. */
struct frame {
    msgpack_sbuffer sb; /* the bytes */
    msgpack_packer pk;  /* writes into sb */
};

FX_UNUSED static void
frame_init(struct frame *f)
{
    msgpack_sbuffer_init(&f->sb);
    msgpack_packer_init(&f->pk, &f->sb, msgpack_sbuffer_write);
}

FX_UNUSED static void
frame_done(struct frame *f)
{
    msgpack_sbuffer_destroy(&f->sb);
}

FX_UNUSED static void
p_str(struct frame *f, const char *s)
{
    msgpack_pack_str(&f->pk, strlen(s));
    msgpack_pack_str_body(&f->pk, s, strlen(s));
}

FX_UNUSED static void
p_raw(struct frame *f, const void *p, size_t n)
{
    msgpack_sbuffer_write(&f->sb, p, n);
}

/* Starts a map of n_fields body fields after the envelope. */
FX_UNUSED static void
p_envelope(struct frame *f, unsigned n_fields, uint64_t v, const char *type, uint64_t id)
{
    msgpack_pack_map(&f->pk, 3 + n_fields);
    p_str(f, "id");
    msgpack_pack_uint64(&f->pk, id);
    p_str(f, "v");
    msgpack_pack_uint64(&f->pk, v);
    p_str(f, "type");
    p_str(f, type);
}

FX_UNUSED static int
decode_frame(struct frame *f, struct msg *m, char *err, size_t errlen)
{
    return msg_decode(f->sb.data, f->sb.size, m, err, errlen);
}

/* Runs a decode that must fail with rc, leave id set, and mention what. */
FX_UNUSED static void
expect(struct frame *f, int rc, uint64_t id, const char *what)
{
    struct msg m;
    char err[256] = "";
    /* Not zeroed: msg_decode zeroes what the type uses, so a refusal half
     * way leaves msg_clear nothing but NULL or its own pointers to free. */
    memset(&m, 0xa5, sizeof(m));
    int r = decode_frame(f, &m, err, sizeof(err));
    if (r != rc)
        print_error("got %d (%s), want %d\n", r, err, rc);
    assert_int_equal(r, rc);
    assert_true(m.id == id);
    if (what && !strstr(err, what)) {
        print_error("error '%s' does not mention '%s'\n", err, what);
        fail();
    }
    msg_clear(&m);
}

/* A minimal guest.apply whose spec carries extra fields written by more(). */
FX_UNUSED static void
apply_frame(struct frame *f, uint64_t id, unsigned n_more, const char *uuid, const char *name)
{
    frame_init(f);
    p_envelope(f, 1, 1, "guest.apply", id);
    p_str(f, "spec");
    msgpack_pack_map(&f->pk, 4 + n_more);
    p_str(f, "id");
    p_str(f, uuid);
    p_str(f, "name");
    p_str(f, name);
    p_str(f, "generation");
    msgpack_pack_uint32(&f->pk, 1);
    p_str(f, "template");
    p_str(f, "busybox");
}
