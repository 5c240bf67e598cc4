"""The CDK app that turns annotrain into a serverless lab: ``python -m infra.app``.

Nothing here builds a construct at import; :func:`infra.app.main` does, when the
CDK CLI (or ``make synth``) runs the app.
"""
