"""The user-error type every layer raises (config, data, spec, CLI): the CLI prints str() and exits 2.
It lives alone so that data and config need not import each other for it."""


class UserError(ValueError):
    """Bad input from the user (config, spec, data files): the CLI prints str() and exits 2."""
