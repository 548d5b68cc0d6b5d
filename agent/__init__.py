"""The agent's judgement: grounded answers (``agent.responder``) and, later, workflows.

Everything here that does I/O (an LLM over HTTP) runs in the I/O shell around the pure
decider; what it returns is plain data recorded in events, so replay never calls it again.
"""
