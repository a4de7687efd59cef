"""A graph whose result has the size the input asks for: {"bytes": N} -> a string of N "x".

{"bytes": N, "chat": true} answers it as the last of a chat's messages instead.
"""


def graph(input):
    text = "x" * input["bytes"]
    if input.get("chat"):
        return {"messages": [{"role": "user", "content": "hi"}, {"role": "ai", "content": text}]}
    return {"text": text}
