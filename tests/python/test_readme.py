"""The README's Python example runs as it is written: the first python block of
its "## Python" section (the second needs files the tool writes, which
test_models covers)."""
import os
import re

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")


def test_readme_example(capsys):
    with open(README, encoding="utf-8") as f:
        section = f.read().split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "README.md (## Python)", "exec"), {})
    assert "torch.Size([4, 256, 512])" in capsys.readouterr().out
