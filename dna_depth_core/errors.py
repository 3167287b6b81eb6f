"""The one exception type for mistakes a user can fix (bad file, bad option, bad data)."""


class UserError(Exception):
    """A problem with the user's input, with a message that says what to do.

    Command-line tools and the ROS node print it as one line, without a traceback. Raise
    it for files, options and data; programming errors stay ``ValueError``/``TypeError``.
    """
