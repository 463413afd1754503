"""The package's version: the version of tokend it is released with (``server_name`` of
``hello`` says ``tokend <version>``)."""

__version__ = "0.1.0"
