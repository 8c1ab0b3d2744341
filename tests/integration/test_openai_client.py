"""The official OpenAI Python client, pointed at this server, works unchanged."""
from __future__ import annotations

import openai
import pytest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(tts_server):
    return openai.OpenAI(base_url=f"{tts_server.url}/v1", api_key="not-checked", max_retries=0)


def test_speech_create_returns_a_wav(client):
    response = client.audio.speech.create(model="tts-1", voice="alloy",
                                          input="Hello from the OpenAI client.")
    audio = response.content
    assert audio[:4] == b"RIFF" and audio[8:12] == b"WAVE"
    assert len(audio) > 44


def test_streaming_response_delivers_pcm_in_pieces(client):
    text = "Streaming through the OpenAI client, chunk by chunk, as the audio is made."
    with client.audio.speech.with_streaming_response.create(
            model="gpt-4o-mini-tts", voice="nova", input=text, response_format="pcm",
            extra_body={"stream": True}) as response:
        assert response.headers["content-type"] == "audio/pcm"
        chunks = [chunk for chunk in response.iter_bytes() if chunk]
    audio = b"".join(chunks)
    assert len(chunks) > 1
    assert len(audio) % 2 == 0 and any(audio)


def test_streaming_response_of_a_whole_wav_matches_create(client):
    kwargs = dict(model="tts-1-hd", voice="echo", input="The same words twice.")
    with client.audio.speech.with_streaming_response.create(**kwargs) as response:
        streamed = response.read()
    assert len(streamed) == len(client.audio.speech.create(**kwargs).content)


def test_errors_reach_the_client_as_openai_errors_with_our_code(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.speech.create(model="tts-1", voice="nobody", input="Hello.")
    assert caught.value.status_code == 400
    assert caught.value.code == "voice_not_found"
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.speech.create(model="tts-1", voice="alloy", input="Hi.",
                                   response_format="mp3")
    assert caught.value.code == "unsupported_response_format"
