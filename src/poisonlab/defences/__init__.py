"""Defences: label-issue detectors and their one evaluator, integrity manifests, audit log, monitors and validation."""

DETECTION_METHODS = ("cl", "knn", "knn-pixels", "loss", "ensemble")
DETECTOR_MODELS = ("logreg", "smallcnn", "simplecnn")
