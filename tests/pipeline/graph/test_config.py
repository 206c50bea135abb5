import pytest

from redline.pipeline.graph import config as gc

GOOD = """
[graph]
name = "t"
budget_us = 1500

[edges.ticks]
address = "ipc:///tmp/x/ticks"
policy = "conflate"
hwm = 8

[edges.answers]
address = "tcp://127.0.0.1:7001"

[nodes.feed]
kind = "feed"
source = "tcp://127.0.0.1:5555"
out = "ticks"
wait = "busy"

[nodes.arbiter]
kind = "arbiter"
in = "ticks"
out = "answers"
policy = "hedge"
instruments = [1, 2]
workers = [{ name = "gpu0", device = "cuda:0" }, { name = "cpu" }]

[nodes.strategy]
kind = "strategy"
in = "answers"
max_position = 3
"""


def test_good_graph_loads_into_typed_frozen_values():
    spec = gc.parse(GOOD)
    assert spec.graph.budget_us == 1500 and spec.budget_ns == 1_500_000
    assert spec.order() == ["feed", "arbiter", "strategy"]
    feed = spec.nodes["feed"]
    assert isinstance(feed, gc.FeedSpec) and feed.wait == "busy"
    arb = spec.nodes["arbiter"]
    assert isinstance(arb, gc.ArbiterSpec) and arb.instruments == (1, 2) and arb.fallback
    assert [(w.name, w.device) for w in arb.workers] == [("gpu0", "cuda:0"), ("cpu", "auto")]
    assert spec.edges["ticks"].policy == "conflate" and spec.edges["answers"].hwm == 1000
    assert spec.producer_of("answers") == "arbiter" and spec.consumer_of("answers") == "strategy"
    with pytest.raises(AttributeError):
        spec.graph.budget_us = 1  # frozen


def test_bundled_demo_preset_loads():
    assert "demo" in gc.presets()
    spec = gc.load("demo")
    assert spec.order()[0] == "feed" and spec.order()[-1] == "journal"


def _bad(old: str, new: str) -> str:
    assert old in GOOD
    with pytest.raises(gc.GraphError) as err:
        gc.parse(GOOD.replace(old, new, 1), where="g.toml")
    return str(err.value)


@pytest.mark.parametrize(
    "old,new,expect",
    [
        ('wait = "busy"', "instruments = [1]", "node 'feed': unknown field 'instruments'"),
        ('wait = "busy"', 'wait = "spin"', "node 'feed': field 'wait'"),
        ('kind = "strategy"', 'kind = "strategi"', "node 'strategy': field 'kind' is 'strategi'"),
        ("max_position = 3", 'max_position = "3"', "node 'strategy': field 'max_position'"),
        (
            "max_position = 3",
            "max_position = 0",
            "node 'strategy': field 'max_position' is 0; expected int >= 1",
        ),
        ("hwm = 8", "hwm = 0", "edge 'ticks': field 'hwm' is 0; expected int >= 1"),
        (
            "hwm = 8",
            "hwm = 9223372036854775807",
            "edge 'ticks': field 'hwm' is 9223372036854775807; expected int <= 2147483647",
        ),
        (
            "instruments = [1, 2]",
            "instruments = [1, -1]",
            "node 'arbiter': field 'instruments[1]' is -1; expected int >= 0",
        ),
        (
            'policy = "hedge"',
            'policy = "hedge"\nhedge_delay_ns = 2000000',
            "node 'arbiter': ArbiterConfig: need hedge_delay_ns (2000000) < the budget (1500000 ns)",
        ),
        (
            'policy = "hedge"',
            'policy = "hedge"\nrtol = -1.0',
            "node 'arbiter': field 'rtol' is -1.0; expected float >= 0.0",
        ),
        (
            'policy = "hedge"',
            'policy = "hedge"\nbreaker = { slow_window = 4, slow_max_misses = 5 }',
            "field 'breaker' is {'slow_window': 4, 'slow_max_misses': 5}; BreakerConfig: need "
            "slow_max_misses (5) <= slow_window (4)",
        ),
        (
            'policy = "hedge"',
            'policy = "hedge"\nbreaker = { heartbeat_timeout_ns = 0 }',
            "node 'arbiter': field 'breaker.heartbeat_timeout_ns' is 0; expected int >= 1",
        ),
        (
            'name = "cpu" }',
            'name = "cpu", heartbeat_us = 0 }',
            "node 'arbiter': field 'workers[1].heartbeat_us' is 0; expected int >= 1",
        ),
        (
            'address = "tcp://127.0.0.1:7001"',
            'address = "tcp://127.0.0.1"',
            "edge 'answers': field 'address' is 'tcp://127.0.0.1'; a tcp address needs",
        ),
        (
            'address = "tcp://127.0.0.1:7001"',
            'address = "tcp://127.0.0.1:99999"',
            "edge 'answers': field 'address' is 'tcp://127.0.0.1:99999'; a tcp address needs",
        ),
        ("hwm = 8", 'hwm = "8"', "edge 'ticks': field 'hwm'"),
        ('policy = "conflate"', 'policy = "drop"', "edge 'ticks': field 'policy'"),
        (
            'address = "tcp://127.0.0.1:7001"',
            'address = "udp://x"',
            "edge 'answers': field 'address'",
        ),
        (
            '{ name = "cpu" }',
            '{ name = "gpu0" }',
            "node 'arbiter': field 'workers' needs two workers with distinct names",
        ),
        (
            '{ name = "cpu" }',
            '{ name = "cpu", gpu = 1 }',
            "node 'arbiter': field 'workers[1]': unknown field 'gpu'",
        ),
        ('source = "tcp://127.0.0.1:5555"\n', "", "node 'feed': missing required field 'source'"),
        (
            'source = "tcp://127.0.0.1:5555"',
            'source = "tcp://nonsense"',
            "node 'feed': field 'source' is 'tcp://nonsense'; a tcp address needs HOST:PORT",
        ),
        ('in = "answers"', 'in = "answerz"', "node 'strategy': field 'in' names edge 'answerz'"),
        (
            "budget_us = 1500",
            "budget_us = -1",
            "[graph]: field 'budget_us' is -1; expected int >= 1",
        ),
        (
            "budget_us = 1500",
            "budget_us = 9223372036854775",
            "[graph]: field 'budget_us' is 9223372036854775; expected int <= 3600000000",
        ),
        ("[graph]", "[graf]\nx=1\n[graph]", "unknown table(s) ['graf']"),
    ],
)
def test_bad_graph_names_node_and_field(old, new, expect):
    msg = _bad(old, new)
    assert msg.startswith("g.toml: ") and expect in msg, msg


def test_every_arbiter_breaker_and_worker_setting_is_reachable_from_toml():
    text = GOOD.replace(
        'policy = "hedge"',
        'policy = "hedge"\nhedge_delay_ns = 300000\nrtol = 0.01\nout_low = -1.0\n'
        "out_high = 1.0\nmax_inflight = 64\n"
        "breaker = { heartbeat_timeout_ns = 200000000, slow_window = 8, slow_max_misses = 2 }",
    ).replace('{ name = "cpu" }', '{ name = "cpu", heartbeat_us = 2000, max_instruments = 8 }')
    arb = gc.parse(text).nodes["arbiter"]
    cfg = arb.arbiter_config(1_500_000)
    assert (cfg.policy, cfg.budget_ns, cfg.hedge_delay_ns, cfg.rtol) == (
        "hedge",
        1_500_000,
        300_000,
        0.01,
    )
    assert (cfg.out_low, cfg.out_high, cfg.max_inflight) == (-1.0, 1.0, 64)
    b = cfg.breaker
    assert (b.heartbeat_timeout_ns, b.slow_window, b.slow_max_misses) == (200_000_000, 8, 2)
    assert b.verify_count == 16  # untouched fields keep their defaults
    assert (arb.workers[1].heartbeat_us, arb.workers[1].max_instruments) == (2000, 8)
    strategy = gc.parse(GOOD).nodes["strategy"]
    assert (strategy.max_position, strategy.qty, strategy.threshold) == (3, 1, 0.2)


def test_a_feed_reads_zeromq_or_udp_but_not_an_in_memory_edge():
    udp = gc.parse(GOOD.replace("tcp://127.0.0.1:5555", "udp://239.1.1.1:9000"))
    assert udp.nodes["feed"].source == "udp://239.1.1.1:9000"
    for bad, why in (
        ("udp://239.1.1.1", "a udp address needs HOST:PORT"),
        ("mem://x", "a feed reads a publisher: use tcp://"),
    ):
        with pytest.raises(gc.GraphError, match=f"node 'feed': field 'source' is '{bad}'; {why}"):
            gc.parse(GOOD.replace("tcp://127.0.0.1:5555", bad))


def test_unused_edge_and_shared_edge_are_errors():
    extra = GOOD + '\n[edges.spare]\naddress = "inproc://spare"\n'
    with pytest.raises(gc.GraphError, match="edge 'spare' has no writer"):
        gc.parse(extra)
    twice = GOOD + '\n[nodes.journal]\nkind = "journal"\nin = "answers"\n'
    with pytest.raises(
        gc.GraphError,
        match=r"node '(strategy|journal)': field 'in': edge 'answers' is already used",
    ):
        gc.parse(twice)


CYCLE = """
[graph]
name = "loop"
[edges.a]
address = "inproc://a"
[edges.b]
address = "inproc://b"
[edges.c]
address = "inproc://c"
policy = "conflate"
[nodes.feed]
kind = "feed"
source = "tcp://127.0.0.1:1"
out = "c"
[nodes.sink]
kind = "journal"
in = "c"
[nodes.x]
kind = "strategy"
in = "a"
out = "b"
[nodes.y]
kind = "strategy"
in = "b"
out = "a"
"""


def test_cycle_is_an_error_naming_a_node_on_it():
    with pytest.raises(
        gc.GraphError, match=r"node '(x|y)': field 'out' closes a cycle (x -> y -> x|y -> x -> y)"
    ):
        gc.parse(CYCLE)


def test_bad_toml_and_missing_file():
    with pytest.raises(gc.GraphError, match=r"g\.toml: not valid TOML"):
        gc.parse("[graph\n", where="g.toml")
    with pytest.raises(FileNotFoundError, match=r"bundled presets: .*demo"):
        gc.load("/nonexistent/graph.toml")


def test_with_addresses_moves_edges_and_rejects_unknown():
    spec = gc.with_addresses(gc.parse(GOOD), ticks="ipc:///tmp/y/ticks")
    assert spec.edges["ticks"].address == "ipc:///tmp/y/ticks"
    assert spec.edges["ticks"].policy == "conflate"
    with pytest.raises(gc.GraphError, match="no edge 'tocks'"):
        gc.with_addresses(spec, tocks="inproc://x")


def test_plan_signing_settings_are_checked_at_load():
    node = '[nodes.arbiter]\nkind = "arbiter"'
    with pytest.raises(gc.GraphError, match="require_signed is set but trusted_keys is empty"):
        gc.parse(GOOD.replace(node, node + "\nrequire_signed = true"))
    with pytest.raises(gc.GraphError, match=r"field 'trusted_keys\[0\]' is 'abc'"):
        gc.parse(GOOD.replace(node, node + '\ntrusted_keys = ["abc"]'))
    key = "0f" * 32
    spec = gc.parse(GOOD.replace(node, node + f'\nrequire_signed = true\ntrusted_keys = ["{key}"]'))
    trust = spec.nodes["arbiter"].plan_trust()
    assert trust.require_signed and trust.trusted_keys == (key,)
