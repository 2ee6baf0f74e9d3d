from keras_transfer.evaluation.metrics import classification_metrics

__all__ = ["classification_metrics"]
