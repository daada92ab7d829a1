/* Tests for node/agent and its store records: an apply or a stop whose
 * record cannot be written, the record retried on heartbeats, and what an
 * agent killed before its record write leaves (an init the record does not
 * name is killed at start-up and before a create; a stop is recorded
 * before its signal). With the fixture of agent_fixture.h. */
#include <sys/stat.h>

#include "common/log.h"
#include "node/agent_fixture.h"

/* An apply whose record cannot be written is nacked and leaves the guest as
 * it was: the master's retry of it does the work again, and is acked only
 * once the record says the new generation (not at once, from memory, with
 * the record never written). */
static void
test_apply_unrecorded(void **state)
{
    struct fixture *f = *state;
    struct guest_spec s;
    struct store_record rec;
    struct msg hello;

    start_agent(f, new_backend());
    handshake(f, &hello);
    msg_clear(&hello);
    fill_spec(&s, ID1, "web1", 1);
    expect_ack(f, send_apply(f, &s), ID1, 1, false);

    fill_spec(&s, ID1, "web1", 2);
    s.limits.memory = 512ULL << 20;
    store_writes_fail(true);
    expect_nack(f, send_apply(f, &s), MSG_ERR_INTERNAL);
    /* The master's retry: still not recorded, so not acked. */
    expect_nack(f, send_apply(f, &s), MSG_ERR_INTERNAL);
    store_writes_fail(false);
    assert_true(stored(f, ID1, &rec));
    assert_int_equal(rec.applied_generation, 1);

    /* With the disk writable again, the retry is applied and recorded. */
    expect_ack(f, send_apply(f, &s), ID1, 2, false);
    assert_true(stored(f, ID1, &rec));
    assert_int_equal(rec.applied_generation, 2);
    assert_int_equal(rec.spec.limits.memory, 512ULL << 20);

    /* guest.apply.start the same: its start is undone ("stopped"), the
     * spec rolled back, and the retry with space runs and records both. */
    fill_spec(&s, ID1, "web1", 3);
    s.limits.memory = 384ULL << 20;
    store_writes_fail(true);
    expect_nack(f, send_apply_start(f, &s), MSG_ERR_INTERNAL);
    expect_event(f, ID1, "stopped");
    store_writes_fail(false);
    expect_ack(f, send_apply_start(f, &s), ID1, 3, true);
    assert_true(stored(f, ID1, &rec));
    assert_int_equal(rec.applied_generation, 3);
    assert_int_equal(rec.spec.limits.memory, 384ULL << 20);
    assert_int_equal(rec.desired, STORE_DESIRED_RUNNING);
    assert_true(rec.rt.pid != 0);
}

/* Waits for the agent's next heartbeat (other frames skipped) and echoes it. */
static void
next_heartbeat(struct fixture *f)
{
    struct msg m;

    for (;;) {
        recv_any(f, &m, "heartbeat");
        if (m.type == MSG_HEARTBEAT)
            break;
        msg_clear(&m);
    }
    echo_heartbeat(f, &m);
    msg_clear(&m);
}

/* A stop whose record cannot be written is nacked (the guest stopped all
 * the same); the record is written by the agent itself on a heartbeat once
 * the disk takes it, not left saying running until the master sends the stop
 * again (an agent restarted from it takes the stop for the guest's own exit). */
static void
test_record_retried(void **state)
{
    struct fixture *f = *state;
    struct guest_spec s;
    struct store_record rec;
    struct msg hello;

    start_agent(f, new_backend());
    handshake(f, &hello);
    msg_clear(&hello);
    fill_spec(&s, ID1, "web1", 1);
    expect_ack(f, send_apply(f, &s), ID1, 1, false);
    expect_ack(f, send_guest(f, MSG_GUEST_START, ID1), ID1, 1, true);

    store_writes_fail(true);
    uint64_t stop = send_guest(f, MSG_GUEST_STOP, ID1);
    expect_event(f, ID1, "stopped");
    expect_nack(f, stop, MSG_ERR_INTERNAL);
    assert_true(stored(f, ID1, &rec));
    assert_int_equal(rec.desired, STORE_DESIRED_RUNNING);
    /* A heartbeat with the disk still full changes nothing. */
    next_heartbeat(f);
    assert_true(stored(f, ID1, &rec));
    assert_int_equal(rec.desired, STORE_DESIRED_RUNNING);
    store_writes_fail(false);

    /* The next heartbeat comes after the write. */
    next_heartbeat(f);
    assert_true(stored(f, ID1, &rec));
    assert_int_equal(rec.desired, STORE_DESIRED_STOPPED);
    assert_int_equal(rec.rt.pid, 0);
}

/* An agent killed between a start's spawn and its record write leaves the
 * guest running with a record that says it is not (desired running, no
 * pid). The agent started from that record kills what runs: the start sent
 * again (never acked) made a second init of the guest on the linux backend,
 * and a stop took it for not running. */
static void
test_unrecorded_run_killed(void **state)
{
    struct fixture *f = *state;
    backend_t *b = new_backend();
    struct store_record r1 = {0};
    struct guest_runtime rt = {0};
    enum guest_state st = GUEST_ABSENT;
    store_t *s = NULL;
    struct msg hello;

    fill_spec(&r1.spec, ID1, "web1", 4);
    r1.applied_generation = 4;
    r1.desired = STORE_DESIRED_RUNNING;
    assert_int_equal(b->ops->create(b, &r1.spec, &r1.ids), 0);
    assert_int_equal(b->ops->start(b, &r1.spec, &r1.ids, &rt), 0);
    assert_true(store_open(f->state, &s) >= 0);
    assert_int_equal(store_put(s, &r1), 0); /* r1.rt: the start's never written */
    store_close(&s);

    start_agent(f, b);
    handshake(f, &hello);
    assert_int_equal(hello.u.hello.n_inventory, 1);
    assert_false(hello.u.hello.inventory[0].running);
    msg_clear(&hello);
    assert_int_equal(b->ops->state(b, &r1.spec, &rt, &st), 0);
    assert_int_equal(st, GUEST_STOPPED);
}

/* An agent killed in a create with its start (guest.apply.start) before the
 * create's first record write leaves the guest running with no record at
 * all. The create sent again kills what runs of it before it creates and
 * starts: on the linux backend the start beside it made a second init. */
static void
test_unrecorded_create_killed(void **state)
{
    struct fixture *f = *state;
    backend_t *b = new_backend();
    struct guest_spec s;
    struct guest_ids ids = {0};
    struct guest_runtime first = {0};
    struct store_record rec;
    enum guest_state st = GUEST_ABSENT;
    struct msg hello;

    fill_spec(&s, ID1, "web1", 1);
    assert_int_equal(b->ops->create(b, &s, &ids), 0);
    assert_int_equal(b->ops->start(b, &s, &ids, &first), 0);

    start_agent(f, b);
    handshake(f, &hello);
    assert_int_equal(hello.u.hello.n_inventory, 0);
    msg_clear(&hello);
    expect_ack(f, send_apply_start(f, &s), ID1, 1, true);
    assert_true(stored(f, ID1, &rec));
    assert_true(rec.rt.pid != 0);
    /* The init that ran unrecorded is gone; the recorded one runs. */
    assert_int_equal(b->ops->state(b, &s, &first, &st), 0);
    assert_int_equal(st, GUEST_STOPPED);
    assert_true(rec.rt.pid != first.pid);
}

/* The same agent killed before the create's first record write, restarted:
 * what runs of the guest with no record is killed at start-up, before the
 * hello, not when (and if) the create comes again. Until then it ran in a
 * uid block no record holds, which a create of another guest could take. */
static void
test_unrecorded_killed_at_start(void **state)
{
    struct fixture *f = *state;
    backend_t *b = new_backend();
    struct guest_spec s;
    struct guest_ids ids = {0};
    struct guest_runtime first = {0};
    enum guest_state st = GUEST_ABSENT;
    struct msg hello;

    fill_spec(&s, ID1, "web1", 1);
    assert_int_equal(b->ops->create(b, &s, &ids), 0);
    assert_int_equal(b->ops->start(b, &s, &ids, &first), 0);

    start_agent(f, b);
    assert_int_equal(b->ops->state(b, &s, &first, &st), 0);
    assert_int_equal(st, GUEST_STOPPED); /* killed, its disk kept */
    handshake(f, &hello);
    assert_int_equal(hello.u.hello.n_inventory, 0);
    msg_clear(&hello);
}

/* Starts the agent on b with its log (info and up) in text. */
static void
start_agent_logged(struct fixture *f, backend_t *b, char *text, size_t size)
{
    char tmpl[] = "/tmp/vf-agent-log-XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    unlink(tmpl);
    int saved = dup(STDERR_FILENO), level = log_max_level;
    log_max_level = LOG_INFO;
    dup2(fd, STDERR_FILENO);
    start_agent(f, b);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    log_max_level = level;
    ssize_t n = pread(fd, text, size - 1, 0);
    close(fd);
    assert_true(n >= 0);
    text[n] = '\0';
    fputs(text, stderr);
}

/* The lines of text that hold every one of the words. */
static int
lines_with(const char *text, const char *w1, const char *w2)
{
    int n = 0;
    for (const char *l = text; *l;) {
        const char *e = strchr(l, '\n');
        size_t len = e ? (size_t)(e - l) : strlen(l);
        _cleanup_free_ char *line = xstrndup(l, len);
        n += strstr(line, w1) && (!w2 || strstr(line, w2));
        l += len + (e != NULL);
    }
    return n;
}

/* What the start-up says of each unrecorded guest, in one line each: a
 * warning when something of it ran and was killed, info when nothing ran (it
 * is seen again at every start until it is removed); and why it has no
 * record: set aside as unreadable, or never written. It said "killed what
 * ran of it" at warning level for every leftover, an empty one too, and not
 * why. */
static void
test_unrecorded_logged(void **state)
{
    struct fixture *f = *state;
    backend_t *b = new_backend();
    struct guest_spec s1, s2, s3;
    struct guest_ids ids = {0};
    struct guest_runtime rt = {0};
    struct msg hello;
    char path[256], text[16384];

    fill_spec(&s1, ID1, "ran", 1);
    assert_int_equal(b->ops->create(b, &s1, &ids), 0);
    assert_int_equal(b->ops->start(b, &s1, &ids, &rt), 0);
    fill_spec(&s2, ID2, "empty", 1);
    assert_int_equal(b->ops->create(b, &s2, &ids), 0);
    fill_spec(&s3, ID3, "aside", 1);
    assert_int_equal(b->ops->create(b, &s3, &ids), 0);
    assert_int_equal(b->ops->start(b, &s3, &ids, &rt), 0);
    /* ID3's record is unreadable: the store's open sets it aside. */
    snprintf(path, sizeof(path), "%s/guests", f->state);
    assert_int_equal(mkdir(f->state, 0700), 0);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/guests/%s.json", f->state, ID3);
    FILE *rf = fopen(path, "we");
    assert_non_null(rf);
    fputs("{not json", rf);
    fclose(rf);

    start_agent_logged(f, b, text, sizeof(text));
    assert_true(text[0]);

    /* One line each, at its level, saying why. */
    assert_int_equal(lines_with(text, ID1, NULL), 1);
    assert_int_equal(lines_with(text, ID1, "warning: "), 1);
    assert_int_equal(lines_with(text, ID1, "killed what ran of it"), 1);
    assert_int_equal(lines_with(text, ID1, "none was written"), 1);
    assert_int_equal(lines_with(text, ID2, NULL), 1);
    assert_int_equal(lines_with(text, ID2, "info: "), 1);
    assert_int_equal(lines_with(text, ID2, "nothing of it runs"), 1);
    assert_int_equal(lines_with(text, ID2, "none was written"), 1);
    assert_int_equal(lines_with(text, ID2, "leftovers remove"), 1);
    assert_int_equal(lines_with(text, ID3, "warning: "), 1);
    assert_int_equal(lines_with(text, ID3, "killed what ran of it"), 1);
    assert_int_equal(lines_with(text, ID3, "set aside as unreadable"), 1);
    assert_int_equal(lines_with(text, ID3, ".json.corrupt-"), 1);

    handshake(f, &hello);
    assert_int_equal(hello.u.hello.n_inventory, 0);
    msg_clear(&hello);
}

#define ID4 "44444444-4444-4444-8444-444444444444"
#define ID5 "55555555-5555-4555-8555-555555555555"

static const struct backend_ops *sim_ops; /* the sim's own, under the counting ones */
static int n_kill, n_kill_many;           /* calls of each */
static char many_ids[8][SPEC_ID_LEN + 1]; /* the ids kill_many was given */
static size_t n_many_ids;

static int
count_kill(backend_t *b, const struct guest_spec *spec, const struct guest_runtime *rt)
{
    n_kill++;
    return sim_ops->kill(b, spec, rt);
}

/* The sim's kill_many, noting the ids; ID2's processes would not die
 * (-EBUSY, what the linux backend says at its deadline). */
static int
count_kill_many(backend_t *b, char *const *ids, size_t n, int *res)
{
    int r = sim_ops->kill_many(b, ids, n, res);

    n_kill_many++;
    for (size_t i = 0; i < n; i++) {
        if (n_many_ids < ARRAY_SIZE(many_ids))
            strscpy(many_ids[n_many_ids++], ids[i], sizeof(many_ids[0]));
        if (strcmp(ids[i], ID2) == 0)
            res[i] = -EBUSY;
    }
    return r;
}

static bool
many_has(const char *id)
{
    for (size_t i = 0; i < n_many_ids; i++)
        if (strcmp(many_ids[i], id) == 0)
            return true;
    return false;
}

/* The start-up kills what runs of the recorded guests whose record says not
 * running together with the unrecorded ones: one kill_many, one deadline
 * for all. It killed each recorded one on its own (kill), and with N whose
 * processes would not die the hello waited N times the backend's timeout. A
 * guest whose kill failed is logged and adopted as stopped; one recorded
 * running is re-adopted, not killed. */
static void
test_not_running_killed_at_once(void **state)
{
    struct fixture *f = *state;
    backend_t *b = new_backend();
    static struct backend_ops ops;
    struct store_record r[4] = {0};
    const char *rid[4] = {ID1, ID2, ID3, ID5};
    struct guest_spec s4;
    struct guest_ids ids = {0};
    struct guest_runtime rt = {0};
    enum guest_state st;
    store_t *s = NULL;
    struct msg hello;
    char text[16384];

    sim_ops = b->ops;
    ops = *b->ops;
    ops.kill = count_kill;
    ops.kill_many = count_kill_many;
    b->ops = &ops;
    n_kill = n_kill_many = 0;
    n_many_ids = 0;
    /* ID1 runs as recorded; ID2 and ID3 run with records that say they do
     * not (a start's spawn before its record write); ID5 is created only;
     * ID4 runs with no record at all. */
    for (size_t i = 0; i < ARRAY_SIZE(r); i++) {
        fill_spec(&r[i].spec, rid[i],
                  i == 0   ? "up"
                  : i == 1 ? "stuck"
                  : i == 2 ? "ran"
                           : "idle",
                  1);
        r[i].applied_generation = 1;
        r[i].desired = i == 0 ? STORE_DESIRED_RUNNING : STORE_DESIRED_STOPPED;
        assert_int_equal(b->ops->create(b, &r[i].spec, &r[i].ids), 0);
        rt = (struct guest_runtime){0};
        if (i < 3)
            assert_int_equal(b->ops->start(b, &r[i].spec, &r[i].ids, &rt), 0);
        if (i == 0)
            r[i].rt = rt;
    }
    fill_spec(&s4, ID4, "norec", 1);
    assert_int_equal(b->ops->create(b, &s4, &ids), 0);
    assert_int_equal(b->ops->start(b, &s4, &ids, &rt), 0);
    assert_true(store_open(f->state, &s) >= 0);
    for (size_t i = 0; i < ARRAY_SIZE(r); i++)
        assert_int_equal(store_put(s, &r[i]), 0);
    store_close(&s);

    start_agent_logged(f, b, text, sizeof(text));
    assert_int_equal(n_kill, 0);
    assert_int_equal(n_kill_many, 1);
    assert_int_equal(n_many_ids, 4);
    assert_false(many_has(ID1));
    assert_true(many_has(ID2) && many_has(ID3) && many_has(ID4) && many_has(ID5));
    /* Nothing of a guest that is not running by its record runs. */
    assert_int_equal(b->ops->state(b, &r[2].spec, &(struct guest_runtime){0}, &st), 0);
    assert_int_equal(st, GUEST_STOPPED);
    assert_int_equal(b->ops->state(b, &s4, &(struct guest_runtime){0}, &st), 0);
    assert_int_equal(st, GUEST_STOPPED);
    assert_int_equal(lines_with(text, "guest=stuck", "cannot kill what runs of it"), 1);
    assert_int_equal(lines_with(text, "guest=ran", "killed what ran of it"), 1);
    assert_int_equal(lines_with(text, "guest=idle", NULL), 0);
    assert_int_equal(lines_with(text, "guest=up", "re-adopted"), 1);

    handshake(f, &hello);
    assert_int_equal(hello.u.hello.n_inventory, 4);
    for (uint32_t i = 0; i < hello.u.hello.n_inventory; i++)
        assert_int_equal(hello.u.hello.inventory[i].running,
                         strcmp(hello.u.hello.inventory[i].id, ID1) == 0);
    msg_clear(&hello);
}

/* The hello says how many guests' leftovers the state directory holds at
 * the agent's start (data/<id> with no record, as `vfleet-node leftovers`
 * lists them): the master shows that the node holds stray state. A
 * recorded guest's directory and a name that is no guest id are not. */
static void
test_hello_leftovers(void **state)
{
    struct fixture *f = *state;
    backend_t *b = new_backend();
    struct store_record r1 = {0};
    store_t *s = NULL;
    struct msg hello;
    char path[512];

    fill_spec(&r1.spec, ID1, "web1", 1);
    r1.applied_generation = 1;
    assert_int_equal(b->ops->create(b, &r1.spec, &r1.ids), 0);
    assert_true(store_open(f->state, &s) >= 0);
    assert_int_equal(store_put(s, &r1), 0);
    store_close(&s);
    const char *dirs[] = {"", "/" ID1, "/" ID2, "/" ID3, "/lost+found"};
    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
        snprintf(path, sizeof(path), "%s/data%s", f->state, dirs[i]);
        assert_int_equal(mkdir(path, 0700), 0);
    }

    start_agent(f, b);
    handshake(f, &hello);
    assert_true(hello.u.hello.has_leftovers);
    assert_int_equal(hello.u.hello.leftovers, 2);
    msg_clear(&hello);
}

static char thawed_ids[4][SPEC_ID_LEN + 1]; /* the guests thaw_stray was asked about */
static size_t n_thawed;

/* The sim's ops with a thaw_stray that notes each guest and says it thawed
 * ID1 (what the linux backend says of a guest a kill cut short left frozen). */
static int
note_thaw(backend_t *b, const struct guest_spec *spec)
{
    (void)b;
    if (n_thawed < ARRAY_SIZE(thawed_ids))
        strscpy(thawed_ids[n_thawed++], spec->id, sizeof(thawed_ids[0]));
    return strcmp(spec->id, ID1) == 0;
}

/* An agent killed in a kill between its freeze and its thaw leaves the
 * guest frozen. The agent started from its records asks the backend to
 * thaw every recorded guest a freeze nothing holds left frozen
 * (thaw_stray), before its hello, and re-adopts the running one. */
static void
test_thaw_stray_at_start(void **state)
{
    struct fixture *f = *state;
    backend_t *b = new_backend();
    static struct backend_ops ops;
    struct store_record r1 = {0}, r2 = {0};
    store_t *s = NULL;
    struct msg hello;

    ops = *b->ops;
    ops.thaw_stray = note_thaw;
    b->ops = &ops;
    n_thawed = 0;
    fill_spec(&r1.spec, ID1, "web1", 1);
    r1.applied_generation = 1;
    r1.desired = STORE_DESIRED_STOPPED; /* the stop that came to the kill */
    assert_int_equal(b->ops->create(b, &r1.spec, &r1.ids), 0);
    assert_int_equal(b->ops->start(b, &r1.spec, &r1.ids, &r1.rt), 0);
    fill_spec(&r2.spec, ID2, "web2", 1);
    r2.applied_generation = 1;
    assert_int_equal(b->ops->create(b, &r2.spec, &r2.ids), 0);
    assert_true(store_open(f->state, &s) >= 0);
    assert_int_equal(store_put(s, &r1), 0);
    assert_int_equal(store_put(s, &r2), 0);
    store_close(&s);

    start_agent(f, b);
    assert_int_equal(n_thawed, 2);
    assert_true(strcmp(thawed_ids[0], ID1) == 0 || strcmp(thawed_ids[1], ID1) == 0);
    assert_true(strcmp(thawed_ids[0], ID2) == 0 || strcmp(thawed_ids[1], ID2) == 0);
    handshake(f, &hello);
    assert_int_equal(hello.u.hello.n_inventory, 2);
    for (uint32_t i = 0; i < 2; i++)
        assert_int_equal(hello.u.hello.inventory[i].running,
                         strcmp(hello.u.hello.inventory[i].id, ID1) == 0);
    msg_clear(&hello);
}

/* The sim's ops with a thaw_stray that says the move's freeze of ID1 is
 * kept (what the linux backend says of a guest with its frozen.move mark). */
static int
keep_move_freeze(backend_t *b, const struct guest_spec *spec)
{
    (void)b;
    return strcmp(spec->id, ID1) == 0 ? BACKEND_MOVE_FROZEN : 0;
}

/* The nack of ref: busy, saying the guest is frozen for a move. */
static void
expect_move_frozen(struct fixture *f, uint64_t ref)
{
    struct msg m;

    recv_msg(f, &m, "the refusal of an exec or shell in a frozen guest");
    if (m.type != MSG_NACK)
        fail_msg("awaiting a nack, got %s", msg_type_name(m.type));
    assert_int_equal(m.u.nack.ref, ref);
    assert_string_equal(msg_error_name(m.u.nack.code), msg_error_name(MSG_ERR_BUSY));
    assert_non_null(strstr(m.u.nack.message, "frozen for a move"));
    msg_clear(&m);
}

/* An agent restarted while a move held its guest frozen keeps the freeze
 * (test_thaw_stray_at_start) and refuses an exec or a shell in that guest
 * at once, busy, saying why: its helper would freeze as it joined, the
 * exec waited out its whole timeout (and every exec of the node behind
 * it), answered "timed out", and ran the command at the thaw anyway. The
 * other guest's exec runs. */
static void
test_move_frozen_refused(void **state)
{
    struct fixture *f = *state;
    backend_t *b = new_backend();
    static struct backend_ops ops;
    struct store_record r1 = {0}, r2 = {0};
    store_t *s = NULL;
    struct msg hello, m;

    ops = *b->ops;
    ops.thaw_stray = keep_move_freeze;
    b->ops = &ops;
    fill_spec(&r1.spec, ID1, "web1", 1);
    r1.applied_generation = 1;
    r1.desired = STORE_DESIRED_STOPPED; /* the move's freeze records it so */
    assert_int_equal(b->ops->create(b, &r1.spec, &r1.ids), 0);
    assert_int_equal(b->ops->start(b, &r1.spec, &r1.ids, &r1.rt), 0);
    fill_spec(&r2.spec, ID2, "web2", 1);
    r2.applied_generation = 1;
    r2.desired = STORE_DESIRED_RUNNING;
    assert_int_equal(b->ops->create(b, &r2.spec, &r2.ids), 0);
    assert_int_equal(b->ops->start(b, &r2.spec, &r2.ids, &r2.rt), 0);
    assert_true(store_open(f->state, &s) >= 0);
    assert_int_equal(store_put(s, &r1), 0);
    assert_int_equal(store_put(s, &r2), 0);
    store_close(&s);

    start_agent(f, b);
    handshake(f, &hello);
    msg_clear(&hello);

    char *argv[] = {"echo", "hello", NULL};
    struct msg x = {.type = MSG_GUEST_EXEC};
    strcpy(x.u.exec.id, ID1);
    x.u.exec.argc = 2;
    x.u.exec.argv = argv;
    expect_move_frozen(f, send_cmd(f, &x));

    struct msg sh = {.type = MSG_SHELL_OPEN};
    strcpy(sh.u.shell.id, ID1);
    sh.u.shell.session = 1;
    expect_move_frozen(f, send_cmd(f, &sh));

    /* The other guest's exec runs. */
    x.u.exec.argv = argv;
    strcpy(x.u.exec.id, ID2);
    uint64_t ref = send_cmd(f, &x);
    recv_msg(f, &m, "exec result");
    assert_int_equal(m.type, MSG_EXEC_RESULT);
    assert_int_equal(m.u.exec_result.ref, ref);
    msg_clear(&m);
}

/* A stop is recorded (desired stopped) before the signal, and an agent
 * started from a record that says so, its init gone, takes the exit for the
 * stop's, not the guest's own: an agent killed between the exit and the
 * stop's record write left desired running, and the restart policy started
 * the guest the master had stopped. */
static void
test_stop_recorded_first(void **state)
{
    struct fixture *f = *state;
    struct guest_spec s;
    struct store_record rec;
    struct msg hello;

    start_agent(f, new_backend_slow(3600 * 1000));
    handshake(f, &hello);
    msg_clear(&hello);
    fill_spec(&s, ID1, "slow", 1);
    s.restart = SPEC_RESTART_ALWAYS;
    expect_ack(f, send_apply(f, &s), ID1, 1, false);
    expect_ack(f, send_guest(f, MSG_GUEST_START, ID1), ID1, 1, true);
    struct msg m = {.type = MSG_GUEST_STOP};
    strcpy(m.u.guest.id, ID1);
    m.u.guest.generation = 1;
    m.u.guest.timeout = 3600;
    (void)send_cmd(f, &m);
    /* Still stopping (the sim's guest halts an hour after the signal). */
    for (int i = 0; i < 100; i++) {
        assert_true(stored(f, ID1, &rec));
        if (rec.desired == STORE_DESIRED_STOPPED)
            break;
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(10000);
    }
    assert_int_equal(rec.desired, STORE_DESIRED_STOPPED);
    assert_true(rec.rt.pid != 0);
}

static void
test_stop_exited_away(void **state)
{
    struct fixture *f = *state;
    backend_t *b = new_backend();
    struct store_record r1 = {0};
    store_t *s = NULL;
    struct msg hello;

    /* What an agent killed after the stop's exit left: desired stopped
     * (recorded first), the init of this boot recorded and gone. */
    fill_spec(&r1.spec, ID1, "web1", 4);
    r1.spec.restart = SPEC_RESTART_ALWAYS;
    r1.applied_generation = 4;
    r1.desired = STORE_DESIRED_STOPPED;
    assert_int_equal(b->ops->create(b, &r1.spec, &r1.ids), 0);
    r1.rt.pid = 4242;
    r1.rt.start_time = 1;
    FILE *bf = fopen("/proc/sys/kernel/random/boot_id", "re");
    assert_non_null(bf);
    assert_non_null(fgets(r1.boot_id, sizeof(r1.boot_id), bf));
    fclose(bf);
    r1.boot_id[strcspn(r1.boot_id, "\n")] = '\0';
    assert_true(store_open(f->state, &s) >= 0);
    assert_int_equal(store_put(s, &r1), 0);
    store_close(&s);

    start_agent(f, b);
    handshake(f, &hello);
    msg_clear(&hello);
    expect_event(f, ID1, "stopped");
    struct store_record rec;
    assert_true(stored(f, ID1, &rec));
    assert_int_equal(rec.rt.pid, 0);
    assert_int_equal(rec.desired, STORE_DESIRED_STOPPED);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unrecorded_run_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unrecorded_create_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unrecorded_killed_at_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unrecorded_logged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_running_killed_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hello_leftovers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thaw_stray_at_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_move_frozen_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_recorded_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_exited_away, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_unrecorded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_retried, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
