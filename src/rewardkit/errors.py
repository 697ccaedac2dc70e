"""The errors a user can act on, all under one base that the CLI turns into one clear line.

    RewardkitError
     ├── DataError        bad or missing data: "FILE:LINE: field 'chosen': expected a string or ..."
     ├── ConfigError      a config file, override or service option that cannot be used; the message names it
     ├── ModelError       a model directory or backbone that cannot be used as asked
     └── TrainingError    training cannot go on (non-finite loss, too little data); the message says what to change

Anything else is a bug and keeps its traceback. Each is also the builtin it refines (`ValueError`, or
`RuntimeError` for training), so code that caught those keeps working.
"""


class RewardkitError(Exception):
    """Something the user can fix; the message says what and where."""


class DataError(RewardkitError, ValueError):
    """Bad preference data; the message says where:
    "FILE:LINE: field 'chosen': expected a string or assistant messages, got int"."""


class ConfigError(RewardkitError, ValueError):
    """A config file or override that cannot be used; the message names the key."""


class ModelError(RewardkitError, ValueError):
    """A model directory, backbone or option that does not fit the model (not trained, wrong task, missing package)."""


class TrainingError(RewardkitError, RuntimeError):
    """Training cannot go on (non-finite loss, no usable data); the message says what to change."""

