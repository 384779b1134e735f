"""Prompt APIs: a model and a prompt wrapped into a REST endpoint with a lifecycle.

Modules, from the inside out: ``model`` (what an API is), ``store`` (its DynamoDB items),
``rendering`` and ``schemas`` (templates and JSON Schema), ``access`` (who may do what),
``design``, ``lifecycle``, ``sharing``, ``catalog``, ``invoke``, ``openapi`` and ``usage``
(the operations the ``/apis`` routes expose).
"""
