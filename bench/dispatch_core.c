/* Benchmark of the master's outboxes alone (master/dispatch.c), on the
 * pattern of bench/sched.sh: 5,000 nodes, 100,000 guests created in batches
 * of 1,000, each guest an apply and a start queued on its node; the nodes
 * answer in order, LAG commands behind the queue (the backlog of a loaded
 * run); the master's 250 ms tick runs between batches, and every ack asks
 * dispatch_pending twice, as on_ack does. A fake clock: 300 ms per batch
 * (3,300 placements/s, what bench/sched.sh measures), so commands left
 * unanswered for 5 s are re-sent as in a real run.
 *
 * Prints the CPU time of the whole run and of the ticks alone, and the frames
 * sent (sends + re-sends), so that bench/dispatch.sh can set it next to the
 * same program built with an older dispatch.c. No SQLite, no network.
 *
 * Usage: dispatch_core [nodes] [guests] [lag] [per-node] [ms-per-batch]
 *   per-node: guests placed on one node before the next (binpack fills a
 *   node; 1 = round robin, as spread) */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "common/mem.h"
#include "master/dispatch.h"

static uint64_t fake_now; /* ms, the dispatcher's clock */
static uint64_t frames;   /* frames handed to the transport */

static uint64_t
clock_ms(void *userdata)
{
    (void)userdata;
    return fake_now;
}

static int
send_frame(void *userdata, const char *node, const void *buf, size_t len)
{
    (void)userdata, (void)node, (void)buf, (void)len;
    frames++;
    return 0;
}

static uint64_t
cpu_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* One queued command, to answer later. */
struct sent {
    uint32_t node;   /* index of its node */
    uint32_t guest;  /* index of its guest */
    int64_t ref;     /* its request id */
    enum msg_type t; /* apply or start */
};

static void
guest_id(uint32_t i, char out[SPEC_ID_LEN + 1])
{
    snprintf(out, SPEC_ID_LEN + 1, "%08x-0000-4000-8000-000000000000", i);
}

int
main(int argc, char **argv)
{
    uint32_t nodes = argc > 1 ? (uint32_t)atoi(argv[1]) : 5000;
    uint32_t guests = argc > 2 ? (uint32_t)atoi(argv[2]) : 100000;
    uint32_t lag = argc > 3 ? (uint32_t)atoi(argv[3]) : 40000;
    uint32_t per_node = argc > 4 ? (uint32_t)atoi(argv[4]) : 20;
    uint32_t batch_ms = argc > 5 ? (uint32_t)atoi(argv[5]) : 300;
    struct dispatch_config cfg = {.send = send_frame, .clock_ms = clock_ms};
    char(*names)[16] = xcalloc(nodes, sizeof(*names));
    struct sent *q = xcalloc((size_t)guests * 2, sizeof(*q));
    size_t n_q = 0, acked = 0;
    uint64_t t_tick = 0, next_tick = 250, ticks = 0;

    if (!nodes || !guests || !per_node)
        return 2;
    for (uint32_t i = 0; i < nodes; i++)
        snprintf(names[i], sizeof(names[i]), "sim-%05u", i);
    dispatch_t *d = dispatch_new(&cfg);
    uint64_t t0 = cpu_ns();

    for (uint32_t b = 0; b < guests || acked < n_q; b += 1000) {
        for (uint32_t i = b; i < b + 1000 && i < guests; i++) {
            struct msg m = {.type = MSG_GUEST_APPLY};
            uint32_t node = i / per_node % nodes;
            guest_id(i, m.u.apply.id);
            snprintf(m.u.apply.name, sizeof(m.u.apply.name), "g%07u", i);
            snprintf(m.u.apply.template_name, sizeof(m.u.apply.template_name), "busybox");
            m.u.apply.generation = 1;
            q[n_q++] = (struct sent){node, i, dispatch_queue(d, names[node], &m), MSG_GUEST_APPLY};
            struct msg s = {.type = MSG_GUEST_START};
            guest_id(i, s.u.guest.id);
            s.u.guest.generation = 1;
            q[n_q++] = (struct sent){node, i, dispatch_queue(d, names[node], &s), MSG_GUEST_START};
        }
        /* The nodes answer everything but the last `lag` commands (all of
         * them once every guest is queued). */
        size_t upto = b + 1000 < guests && n_q > lag ? n_q - lag : n_q;
        for (; acked < upto; acked++) {
            const struct sent *s = &q[acked];
            char id[SPEC_ID_LEN + 1];
            guest_id(s->guest, id);
            if (dispatch_complete(d, names[s->node], (uint64_t)s->ref, NULL) < 0)
                return fprintf(stderr, "dispatch_core: ack %zu found nothing\n", acked), 1;
            /* on_ack: is a destroy pending (guests_deleting)? a start? */
            dispatch_pending(d, names[s->node], MSG_GUEST_DESTROY, id);
            dispatch_pending(d, names[s->node], MSG_GUEST_START, id);
        }
        fake_now += batch_ms;
        while (fake_now >= next_tick) {
            uint64_t t = cpu_ns();
            dispatch_tick(d);
            t_tick += cpu_ns() - t;
            ticks++;
            next_tick += 250;
        }
    }
    uint64_t total = cpu_ns() - t0;
    printf("nodes %u guests %u lag %u per-node %u ms-per-batch %u: cpu %.1f ms (%.0f ns per "
           "guest), ticks %" PRIu64 " in %.1f ms, frames %" PRIu64 "\n",
           nodes, guests, lag, per_node, batch_ms, total / 1e6, (double)total / guests, ticks,
           t_tick / 1e6, frames);
    dispatch_destroy(&d);
    free(q);
    free(names);
    return 0;
}
