"""The sample members the demo and the sandbox add: the simulator gives any CorpNum a history."""

SAMPLE_MEMBERS = [
    ("1234567890", "팝빌 테스트상사"),
    ("2208112345", "한빛전자 주식회사"),
    ("1018212345", "누리물산"),
    ("3148154321", "바다식품"),
    ("6098101234", "소망세무회계"),
]
