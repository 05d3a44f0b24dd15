"""The error type every data step raises for bad input."""


class DataError(ValueError):
    """Input data or a data-step parameter is unusable; the message names the field, file or row."""


class TensorError(DataError):
    """A V2 tensor's bytes, shape or datatype disagree; the message names the tensor."""
