"""Parameters: values with units, formulas and their dependency graph.

The pure engine lives in ``units`` (one pint registry, SI conversions),
``formula`` (parser, dimensional analysis, vectorised evaluation), ``graph``
(cycles, downstream recompute, compiled sweeps) and ``engine_errors``; it
touches no database, network or GraphQL.
"""
