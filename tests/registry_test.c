/*
 * registry_test.c: black-box tests of the local name registry (sl_register,
 * sl_unregister, sl_whereis, spawn option register_as): lookups, conflicts,
 * one name per actor, release when the actor stops and reuse, bad names.
 */
#include <stdio.h>

#include "sl_test.h"

static void test_register_whereis_unregister(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe a;
    slt_probe_init(&a, &e, "a");
    sl_id aid = slt_spawn(&e, &a, NULL);
    sl_id out = {9, 9};
    SLT_ERR(sl_whereis(e.core, "planner", &out), SL_ERR_NOTFOUND);
    SLT_OK(sl_register(e.core, "planner", aid));
    SLT_OK(sl_whereis(e.core, "planner", &out));
    SLT_ID_EQ(out, aid);
    SLT_ERR(sl_whereis(e.core, "planne", &out), SL_ERR_NOTFOUND);
    SLT_ERR(sl_whereis(e.core, "planner2", &out), SL_ERR_NOTFOUND);
    SLT_OK(sl_unregister(e.core, "planner"));
    SLT_ERR(sl_whereis(e.core, "planner", &out), SL_ERR_NOTFOUND);
    SLT_ERR(sl_unregister(e.core, "planner"), SL_ERR_NOTFOUND);
    SLT_ERR(sl_unregister(e.core, "never"), SL_ERR_NOTFOUND);
    /* Unregistering does not touch the actor, and it may take a name again. */
    assert_true(sl_alive(e.core, aid));
    SLT_OK(sl_register(e.core, "other", aid));
    SLT_OK(sl_whereis(e.core, "other", &out));
    SLT_ID_EQ(out, aid);
    slt_env_close(&e);
}

static void test_name_taken_and_one_name_per_actor(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe a, b;
    slt_probe_init(&a, &e, "a");
    slt_probe_init(&b, &e, "b");
    sl_id aid = slt_spawn(&e, &a, NULL);
    sl_id bid = slt_spawn(&e, &b, NULL);
    SLT_OK(sl_register(e.core, "x", aid));
    SLT_ERR(sl_register(e.core, "x", bid), SL_ERR_EXISTS);
    SLT_ERR(sl_register(e.core, "x", aid), SL_ERR_EXISTS);
    SLT_ERR(sl_register(e.core, "y", aid), SL_ERR_EXISTS); /* the actor has a name */
    sl_id out;
    SLT_ERR(sl_whereis(e.core, "y", &out), SL_ERR_NOTFOUND);
    SLT_OK(sl_whereis(e.core, "x", &out));
    SLT_ID_EQ(out, aid);
    SLT_OK(sl_register(e.core, "y", bid));
    SLT_OK(sl_whereis(e.core, "y", &out));
    SLT_ID_EQ(out, bid);
    slt_env_close(&e);
}

static void test_register_dead_or_unknown_actor(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe a;
    slt_probe_init(&a, &e, "a");
    sl_id aid = slt_spawn(&e, &a, NULL);
    SLT_OK(sl_stop(e.core, aid, SL_REASON_NORMAL));
    slt_run(&e);
    SLT_ERR(sl_register(e.core, "ghost", aid), SL_ERR_NOACTOR);
    SLT_ERR(sl_register(e.core, "ghost", ((sl_id){SLT_NODE, 777777})), SL_ERR_NOACTOR);
    SLT_ERR(sl_register(e.core, "ghost", SL_ID_NONE), SL_ERR_NOACTOR);
    sl_id out;
    SLT_ERR(sl_whereis(e.core, "ghost", &out), SL_ERR_NOTFOUND);
    slt_env_close(&e);
}

static void run_name_released_on_stop(int how)
{
    slt_env e;
    slt_env_open(&e);
    slt_probe a, b;
    slt_probe_init(&a, &e, "a");
    slt_probe_init(&b, &e, "b");
    sl_id aid = slt_spawn(&e, &a, NULL);
    SLT_OK(sl_register(e.core, "svc", aid));
    if (how == 0)
        SLT_OK(sl_stop(e.core, aid, SL_REASON_SHUTDOWN));
    else if (how == 1)
        slt_crash(&e, aid, 4);
    else
        slt_exit(&e, aid, SL_REASON_NORMAL, 0);
    slt_run(&e);
    assert_int_equal(a.stops, 1);
    sl_id out;
    SLT_ERR(sl_whereis(e.core, "svc", &out), SL_ERR_NOTFOUND);
    SLT_ERR(sl_unregister(e.core, "svc"), SL_ERR_NOTFOUND);
    /* Reusable by a new actor. */
    sl_id bid = slt_spawn(&e, &b, NULL);
    SLT_OK(sl_register(e.core, "svc", bid));
    SLT_OK(sl_whereis(e.core, "svc", &out));
    SLT_ID_EQ(out, bid);
    slt_env_close(&e);
}

static void test_name_released_on_stop(void **state)
{
    (void)state;
    run_name_released_on_stop(0);
}

static void test_name_released_on_crash(void **state)
{
    (void)state;
    run_name_released_on_stop(1);
}

static void test_name_released_on_exit(void **state)
{
    (void)state;
    run_name_released_on_stop(2);
}

static void test_bad_names(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe a;
    slt_probe_init(&a, &e, "a");
    sl_id aid = slt_spawn(&e, &a, NULL);
    char name[SL_NAME_MAX + 2];
    memset(name, 'n', sizeof name);
    name[SL_NAME_MAX + 1] = 0; /* SL_NAME_MAX + 1 bytes */
    SLT_ERR(sl_register(e.core, "", aid), SL_ERR_BAD_NAME);
    SLT_ERR(sl_register(e.core, name, aid), SL_ERR_BAD_NAME);
    sl_id out;
    SLT_ERR(sl_whereis(e.core, name, &out), SL_ERR_NOTFOUND);
    name[SL_NAME_MAX] = 0; /* exactly SL_NAME_MAX bytes: fine */
    SLT_OK(sl_register(e.core, name, aid));
    SLT_OK(sl_whereis(e.core, name, &out));
    SLT_ID_EQ(out, aid);
    SLT_OK(sl_unregister(e.core, name));
    SLT_OK(sl_register(e.core, "x", aid)); /* 1 byte: fine */
    slt_env_close(&e);
}

static void test_name_is_copied(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe a;
    slt_probe_init(&a, &e, "a");
    sl_id aid = slt_spawn(&e, &a, NULL);
    char buf[16];
    strcpy(buf, "copied");
    SLT_OK(sl_register(e.core, buf, aid));
    strcpy(buf, "changed");
    sl_id out;
    SLT_OK(sl_whereis(e.core, "copied", &out));
    SLT_ID_EQ(out, aid);
    SLT_ERR(sl_whereis(e.core, "changed", &out), SL_ERR_NOTFOUND);
    slt_env_close(&e);
}

static void test_many_names(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    enum { N = 200 };
    slt_probe *p = test_calloc(1, sizeof *p);
    slt_probe_init(p, &e, "many");
    sl_id ids[N];
    char name[32];
    for (int i = 0; i < N; i++) {
        ids[i] = slt_spawn(&e, p, NULL);
        snprintf(name, sizeof name, "agent-%d", i);
        SLT_OK(sl_register(e.core, name, ids[i]));
    }
    for (int i = 0; i < N; i += 3)
        SLT_OK(sl_stop(e.core, ids[i], SL_REASON_NORMAL));
    slt_run(&e);
    for (int i = 0; i < N; i++) {
        sl_id out;
        snprintf(name, sizeof name, "agent-%d", i);
        if (i % 3 == 0) {
            SLT_ERR(sl_whereis(e.core, name, &out), SL_ERR_NOTFOUND);
        } else {
            SLT_OK(sl_whereis(e.core, name, &out));
            SLT_ID_EQ(out, ids[i]);
        }
    }
    slt_env_close(&e);
    test_free(p);
}

static void test_register_as_spawn_option(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe a, b;
    slt_probe_init(&a, &e, "a");
    slt_probe_init(&b, &e, "b");
    sl_spawn_opts o;
    sl_spawn_opts_default(&o);
    char name[8];
    strcpy(name, "auto");
    o.register_as = name;
    sl_id aid = slt_spawn(&e, &a, &o);
    strcpy(name, "xxxx"); /* copied */
    sl_id out;
    SLT_OK(sl_whereis(e.core, "auto", &out));
    SLT_ID_EQ(out, aid);

    /* Taken: the spawn fails and leaves nothing behind. */
    strcpy(name, "auto");
    sl_id bid = SL_ID_NONE;
    SLT_ERR(slt_try_spawn(&e, &b, &o, &bid), SL_ERR_EXISTS);
    assert_int_equal(sl_core_alive(e.core), 1);
    assert_int_equal(b.starts, b.stops); /* if it was started at all, it was stopped */
    SLT_OK(sl_whereis(e.core, "auto", &out));
    SLT_ID_EQ(out, aid);

    /* Released when the actor stops, then usable by a new spawn. */
    SLT_OK(sl_stop(e.core, aid, SL_REASON_NORMAL));
    slt_run(&e);
    SLT_ERR(sl_whereis(e.core, "auto", &out), SL_ERR_NOTFOUND);
    slt_probe_init(&b, &e, "b");
    bid = slt_spawn(&e, &b, &o);
    SLT_OK(sl_whereis(e.core, "auto", &out));
    SLT_ID_EQ(out, bid);
    /* It counts as the actor's one name. */
    SLT_ERR(sl_register(e.core, "second", bid), SL_ERR_EXISTS);
    slt_env_close(&e);
}

static void test_register_as_bad_name(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe a;
    slt_probe_init(&a, &e, "a");
    sl_spawn_opts o;
    sl_spawn_opts_default(&o);
    o.register_as = "";
    sl_id id;
    int rc = slt_try_spawn(&e, &a, &o, &id);
    SLT_ERR(rc, SL_ERR_BAD_NAME);
    assert_int_equal(sl_core_alive(e.core), 0);
    slt_env_close(&e);
}

static int start_fail(sl_actor *self, slt_probe *p)
{
    (void)self;
    (void)p;
    return 5;
}

static void test_register_as_released_when_start_fails(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe a, b;
    slt_probe_init(&a, &e, "a");
    slt_probe_init(&b, &e, "b");
    a.start_hook = start_fail;
    sl_spawn_opts o;
    sl_spawn_opts_default(&o);
    o.register_as = "phoenix";
    sl_id id;
    assert_int_equal(slt_try_spawn(&e, &a, &o, &id), 5);
    slt_run(&e);
    sl_id out;
    SLT_ERR(sl_whereis(e.core, "phoenix", &out), SL_ERR_NOTFOUND);
    sl_id bid = slt_spawn(&e, &b, &o);
    SLT_OK(sl_whereis(e.core, "phoenix", &out));
    SLT_ID_EQ(out, bid);
    slt_env_close(&e);
}

static void test_names_freed_by_core_del(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe a;
    slt_probe_init(&a, &e, "a");
    char name[32];
    for (int i = 0; i < 10; i++) {
        sl_id id = slt_spawn(&e, &a, NULL);
        snprintf(name, sizeof name, "kept-%d", i);
        SLT_OK(sl_register(e.core, name, id));
    }
    slt_env_close(&e); /* asserts nothing is left allocated */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_whereis_unregister),
        cmocka_unit_test(test_name_taken_and_one_name_per_actor),
        cmocka_unit_test(test_register_dead_or_unknown_actor),
        cmocka_unit_test(test_name_released_on_stop),
        cmocka_unit_test(test_name_released_on_crash),
        cmocka_unit_test(test_name_released_on_exit),
        cmocka_unit_test(test_bad_names),
        cmocka_unit_test(test_name_is_copied),
        cmocka_unit_test(test_many_names),
        cmocka_unit_test(test_register_as_spawn_option),
        cmocka_unit_test(test_register_as_bad_name),
        cmocka_unit_test(test_register_as_released_when_start_fails),
        cmocka_unit_test(test_names_freed_by_core_del),
    };
    return cmocka_run_group_tests_name("registry", tests, NULL, NULL);
}
