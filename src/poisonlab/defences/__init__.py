"""Defences: label-issue detectors and their one evaluator, integrity manifests, audit log, monitors and validation."""

DETECTION_METHODS = ("cl", "knn", "knn-pixels", "loss", "ensemble")  # the label-flip detectors, detect's default
GRADIENT_METHODS = ("influence", "grad", "gradclust")  # last-layer gradients over training: TracIn, norm, clusters
BACKDOOR_METHODS = ("spectral", "ac", "ac-exclusionary", "correlation")  # spectral signatures, activation clustering
# (size rule, or exclusionary reclassification), pixel correlations
DETECTOR_MODELS = ("auto", "logreg", "smallcnn", "simplecnn")  # auto: smallcnn on images, logreg on feature rows
