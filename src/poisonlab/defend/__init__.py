"""Defences against label poisoning: integrity manifests, an audit trail, and statistical monitors."""
