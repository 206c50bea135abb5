"""The node kinds of a graph, one file each; `base.Node` is what the runtime drives."""

from redline.pipeline.graph.nodes.arbiter import ArbiterNode
from redline.pipeline.graph.nodes.base import Node
from redline.pipeline.graph.nodes.features import FeaturesNode
from redline.pipeline.graph.nodes.feed import FeedNode
from redline.pipeline.graph.nodes.journal import JournalNode
from redline.pipeline.graph.nodes.strategy import StrategyNode

__all__ = ["ArbiterNode", "FeaturesNode", "FeedNode", "JournalNode", "Node", "StrategyNode"]
