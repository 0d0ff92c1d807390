# nbgrader settings shared by every pod: the course and the exchange volume (values.yaml
# mounts one ReadWriteMany volume at /srv/nbgrader/exchange in every user's pod).
c = get_config()  # noqa: F821
c.CourseDirectory.course_id = "mlfs"
c.Exchange.root = "/srv/nbgrader/exchange"
