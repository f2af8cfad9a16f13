package dev.vigil.model;

/** A model or model card the job cannot run with; the message says what to fix. */
public class ModelException extends RuntimeException {
    public ModelException(String message) {
        super(message);
    }

    public ModelException(String message, Throwable cause) {
        super(message, cause);
    }
}
