"""Training: the model zoo, one fit/predict routine for torch and scikit-learn models, metrics and layer tables."""

TORCH_MODELS = ("smallcnn", "simplecnn", "original")
SKLEARN_MODELS = ("svc", "logreg")
MODELS = TORCH_MODELS + SKLEARN_MODELS
STACK_MODES = ("auto", "on", "off")
