"""What the tests share: helpers and fixtures, one module a concern.

No test module imports another; what two of them need lives here. The root
``conftest.py`` registers the fixture modules (``folders``, ``stores``) as plugins.
"""
