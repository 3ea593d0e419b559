"""What the committee pages (``serving.routes.pages``) show, apart from the routes themselves.

- :mod:`serving.committee.render`: the templates, :func:`~serving.committee.render.render`, the
  HTML error pages under ``/committee`` and the static assets (``StaticFiles``, cached).
- :mod:`serving.committee.state`: per-app caches and the serving model on ``app.state``.
- :mod:`serving.committee.queries`: the data a page shows, read from the store tables, the
  audit log, the warning store and the model bundle.
- :mod:`serving.committee.explaining`: past declarations explained as of their own time
  (point-in-time features, the serving model's SHAP).
- :mod:`serving.committee.figures`: the page charts, drawn with :mod:`serving.charts`.

A new committee page is a route module of its own under ``serving/routes/`` that renders its
own template with :func:`serving.committee.render.render` and takes the signed-in
:data:`serving.sessions.User`.
"""
