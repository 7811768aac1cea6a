"""Layer base class, the Model DAG and the builder from a resolved spec."""
