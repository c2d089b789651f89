"""A simulated messaging provider that speaks the documented API (``messaging-api.txt``),
and the contacts part of the mail marketing API (``mail-api-4-contacts.txt``) under
``/mail/api/``.

It validates requests the way the provider's documentation says and answers with
the documented codes and bodies, so that local runs, tests and benchmarks exercise
the pipeline's real error handling. ``/_sandbox/*`` routes let tests inspect what
it received (see ``sandbox.app``).
"""
