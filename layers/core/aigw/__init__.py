"""aigw: the domain core of the AI gateway (keys, teams, models, providers, metering).

Handlers in ``functions/`` translate HTTP to calls of this package; nothing here knows
about API Gateway except :mod:`aigw.web`, the one place where errors become HTTP answers.
"""

__version__ = "0.1.0"
