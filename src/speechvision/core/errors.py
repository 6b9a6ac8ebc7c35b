"""The project's error base: any :class:`SpeechvisionError` is a user-facing, one-line problem."""


class SpeechvisionError(Exception):
    """Base of every error the CLI prints as one line (bad input, missing file, bad config)."""


def is_user_error(e: BaseException) -> bool:
    return isinstance(e, (SpeechvisionError, FileNotFoundError, PermissionError))
