"""The local cluster's node agent: registers nodes, schedules pods and runs them as processes."""

from localcluster.nodeagent.agent import NodeAgent
from localcluster.nodeagent.images import Image, ImageCatalog, ImageNotFound

__all__ = ["Image", "ImageCatalog", "ImageNotFound", "NodeAgent"]
