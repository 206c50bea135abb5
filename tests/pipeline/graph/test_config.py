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
    assert isinstance(feed, gc.FeedNode) and feed.wait == "busy"
    arb = spec.nodes["arbiter"]
    assert isinstance(arb, gc.ArbiterNode) and arb.instruments == (1, 2) and arb.fallback
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
            "node 'strategy': field 'max_position' must be > 0",
        ),
        ("hwm = 8", "hwm = 0", "edge 'ticks': field 'hwm' must be > 0"),
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
        ('in = "answers"', 'in = "answerz"', "node 'strategy': field 'in' names edge 'answerz'"),
        ("budget_us = 1500", "budget_us = -1", "[graph] field 'budget_us' must be > 0"),
        ("[graph]", "[graf]\nx=1\n[graph]", "unknown table(s) ['graf']"),
    ],
)
def test_bad_graph_names_node_and_field(old, new, expect):
    msg = _bad(old, new)
    assert msg.startswith("g.toml: ") and expect in msg, msg


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
