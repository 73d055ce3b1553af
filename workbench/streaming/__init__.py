"""Streaming: HTTP ingestion, online state, streaming segment evaluation, subscriptions.

:mod:`~workbench.streaming.engine` holds the state and evaluates streaming segments per
profile; :mod:`~workbench.streaming.app` is the HTTP API; :mod:`~workbench.streaming.service`
puts them together (``workbench serve``); :mod:`~workbench.streaming.log` is the durable log.
"""
