"""What every task's evaluation shares: the ``Evaluator`` interface (``process`` batches of
predictions, ``compute`` the metrics) and finite-number helpers (``bench.evaluation.base``).
Each task's metrics are in its package (``bench.tasks.<task>.metrics``). numpy only.
"""
