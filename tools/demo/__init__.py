"""Demo and benchmark machinery, kept out of the installed ``mmdfkd`` package.

``shapes_coco`` generates the demo's shapes dataset; ``experiment`` runs configs on it with the
mmengine Runner, for ``tools/run_demo.py`` and ``benchmarks/``; ``realism`` scores synthetic
images against the real val images (a Fréchet distance, for ``benchmarks/quality.py``);
``proxy_classification`` is the texture task the frozen-BN demo teacher's backbone is
pretrained on (``tools/pretrain_backbone.py``). The scripts in ``tools/`` import it as ``demo``
(their own folder is first on ``sys.path``); the benchmarks put ``tools/`` on ``sys.path``, and
the tests get it from ``pythonpath`` in ``pytest.ini``.
"""
