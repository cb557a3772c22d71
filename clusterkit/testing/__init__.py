"""pytest support: the ``clusterkit`` plugin (registered through ``pytest11``)."""
