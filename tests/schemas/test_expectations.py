"""The Great Expectations suites restate the bronze rules that ingest applies row by row."""
from schemas.bronze import TABLES
from schemas.expectations import expectation_suite


def _by_rule(table: str) -> dict:
    return {e.meta["rule"]: e for e in expectation_suite(TABLES[table]).expectations}


def test_every_required_column_code_set_bound_and_the_natural_key_has_an_expectation():
    for spec in TABLES.values():
        rules = _by_rule(spec.name)
        for column in spec.columns:
            assert (f"{column.name}.not_null" in rules) == column.required, (spec.name, column.name)
            if column.allowed is not None and column.kind != "sources":
                assert set(rules[f"{column.name}.in_set"].value_set) == set(column.allowed)
            if column.max_length is not None:
                assert rules[f"{column.name}.length"].max_value == column.max_length
            if column.low is not None or column.high is not None:
                bounds = rules[f"{column.name}.range"]
                assert (bounds.min_value, bounds.max_value) == (column.low, column.high)
        assert rules["natural_key.unique"].column_list == [*spec.natural_key, "dt"]
        assert rules["schema.columns"].column_list == [*spec.column_names, "dt"]


def test_customer_suite_names_its_codes_and_bounds():
    rules = _by_rule("customers")
    assert set(rules["gender.in_set"].value_set) == {"M", "F"}
    assert (rules["birth_year.range"].min_value, rules["birth_year.range"].max_value) == (1900, 2026)
    assert rules["link_key.format"].regex == "^[A-Za-z0-9_-]{43}$"


def test_the_committed_contract_page_is_what_the_declarations_render():
    from pathlib import Path

    from schemas.docs import render_contract

    page = Path(__file__).parents[2] / "docs" / "contract.md"
    assert page.read_text(encoding="utf-8") == render_contract(), "run: python -m schemas.docs > docs/contract.md"
    assert "| `charge_amt` | list item | signed (decimal(18,3)) | required | signed |" in page.read_text(encoding="utf-8")
    assert "| `cancel_dtime` | list item | dtime (timestamp) | optional; required when status is 02 |" in \
        page.read_text(encoding="utf-8")
