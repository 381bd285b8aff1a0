"""The CDP domain package: event models, identity resolution, profiles, segments, activation.

Pure domain modules take their stores as arguments; AWS access lives in ``cdp.adapters``.
Nothing here reads ``os.environ`` except :func:`cdp.settings.Settings.from_env`, called once
by each handler.
"""

__version__ = "0.1.0"
