"""The node kinds of a graph, one file each; `base.Node` is what the runtime drives."""

from redline.pipeline.graph.nodes.arbiter import ArbiterNode
from redline.pipeline.graph.nodes.base import Node
from redline.pipeline.graph.nodes.features import FeaturesNode
from redline.pipeline.graph.nodes.feed import FeedNode
from redline.pipeline.graph.nodes.frame_arbiter import FrameArbiterNode
from redline.pipeline.graph.nodes.journal import JournalNode
from redline.pipeline.graph.nodes.planner import PlannerNode
from redline.pipeline.graph.nodes.strategy import StrategyNode
from redline.pipeline.graph.nodes.sync import SyncNode

__all__ = [
    "ArbiterNode", "FeaturesNode", "FeedNode", "FrameArbiterNode", "JournalNode", "Node",
    "PlannerNode", "StrategyNode", "SyncNode",
]  # fmt: skip
