"""One small exception tree. Student mistakes are results in records, never exceptions.

Each exception says who must act; the CLI maps them to exit codes like pytest's.
"""


class HarnessError(Exception):
    """Base of every error the harness raises on purpose."""

    exit_code = 3


class InfrastructureError(HarnessError):
    """The machine or the installation is not right: the operator (TA, CI admin) must act."""

    exit_code = 3


class SpecError(HarnessError):
    """An assignment file is wrong: the instructor must act. Names the file and the field."""

    exit_code = 3


class UsageError(HarnessError):
    """The command line is wrong: whoever typed it must act."""

    exit_code = 4


class EvaluationError(HarnessError):
    """Trusted evaluation could not run for a reason that is not the student's."""

    exit_code = 3
