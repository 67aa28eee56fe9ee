"""Stream processing: what Mailyard decides, as faust-streaming agents.

``streams.app`` builds the Faust app; ``streams.normalize`` turns raw
webhooks into events, ``streams.ledger`` deduplicates and counts them, and
``streams.api`` serves the counts over REST.
"""
