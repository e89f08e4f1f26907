"""mnist-cnn reference (seed 002): a module, run as a script.

Conv2D(32, 5x5) -> MaxPool -> Conv2D(64, 2x2) -> MaxPool -> Dropout(0.25) -> Flatten ->
Dense(1000) -> Dense(10, softmax): 3,156,098 parameters. The seed passes the test set as
validation data with nothing selecting on it (reported as info, not a leak).
"""
from tensorflow.keras import datasets, layers, models

mnist = datasets.mnist
(X_train, y_train), (X_test, y_test) = mnist.load_data()
X_train, X_test = X_train / 255.0, X_test / 255.0
X_train = X_train.reshape((60000, 28, 28, 1))
X_test = X_test.reshape((10000, 28, 28, 1))

### BEGIN SOLUTION: build and compile the model
model = models.Sequential([
    layers.Conv2D(32, kernel_size=(5, 5), strides=(1, 1), padding='same', activation='relu',
                  input_shape=(28, 28, 1)),
    layers.MaxPooling2D(pool_size=(2, 2), strides=(2, 2)),
    layers.Conv2D(64, kernel_size=(2, 2), activation='relu', padding='same'),
    layers.MaxPooling2D(pool_size=(2, 2)),
    layers.Dropout(0.25),
    layers.Flatten(),
    layers.Dense(1000, activation='relu'),
    layers.Dense(10, activation='softmax'),
])
model.summary()

model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
### END SOLUTION
hist = model.fit(X_train, y_train, epochs=5, verbose=2, validation_data=(X_test, y_test))

score = model.evaluate(X_test, y_test, verbose=0)
print('Test loss:', score[0])
print('Test accuracy:', score[1])
