"""The department's numbers: each metric a definition in words and one aggregate query
(GROUP BY in the database, never a stay at a time), returning a small table the metrics page
charts and exports. Aggregates only: no patient appears in a result.
"""
