"""Tests of the site file (:mod:`opsctl.site`: models, value checks, loading, edits), named after the
flow's spec step; the folder keeps its name so the documented fast subset (``tests/spec tests/render
tests/ml tests/ops -k "not vm"``) runs these tests as written."""
