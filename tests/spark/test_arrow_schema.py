"""Schema.arrow_type (no JVM) renders every table as Spark's own Arrow conversion of spark_type() does."""
from pyspark.sql.pandas.types import to_arrow_schema

from tickcast import tables


def test_arrow_type_equals_sparks_arrow_schema_for_every_table(spark):
    for name, t in tables.ALL.items():
        assert t.schema.arrow_type() == to_arrow_schema(t.schema.spark_type()), name
