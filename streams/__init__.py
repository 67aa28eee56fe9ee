"""Stream processing: what Mailyard decides, in the worker's stages.

``streams.app`` builds the worker (a Faust app running the stages of
``streams.stage``); ``streams.normalize`` turns raw
webhooks into events, ``streams.ledger`` deduplicates and counts them, and
``streams.api`` serves the counts over REST.
"""
