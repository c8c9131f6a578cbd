"""The restore path as named stages over one request (docs/ARCHITECTURE.md, "The restore path").

A file restore (:func:`flowprior.pipeline.run.run_restore`, what ``flowprior restore`` runs) takes a frozen
:class:`~flowprior.pipeline.request.RestoreRequest` through resolve, plan, read, bind operator, warm start, solve,
blend, write and provenance, each stage a function of its own module filling a
:class:`~flowprior.pipeline.request.RestoreState`. Images already in memory, or read by rows, enter at
:func:`~flowprior.pipeline.rows.restore_rows` (bind operator -> warm start -> solve -> blend). Whether a restore
streams is decided in one place, :func:`~flowprior.pipeline.streaming.stream_mode`, which the memory planner asks
too.
"""
