"""clusterkit's version, in a module of its own: the image tags hash it, and
importing it must not import the package's front (which would be a loop)."""

__version__ = "0.1.0"
