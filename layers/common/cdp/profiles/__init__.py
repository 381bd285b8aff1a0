"""The single customer view: everything known about one person, for support.

``build_timeline`` gathers the profile, its merges, segments, messages and latest events through
ports; ``render_page`` and ``render_text`` show it; ``sign_view_link`` / ``verify_view_link`` let a
browser open the page without an Authorization header.
"""
