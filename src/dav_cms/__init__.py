"""dav_cms: a contact-management and shared-calendar server on Radicale and SQL."""

__version__ = "0.1.0"
