"""Privacy requests: erase, export, suppress, unsuppress — records, suppression, erasure and its proof.

``requests`` holds the request record and its validation, ``suppression`` the hashed list the
collector and unify drop events against, ``erase`` the resumable erasure job, ``verify`` the scan
that proves nothing is left. Export, consent and minimisation live in their own modules.
"""
