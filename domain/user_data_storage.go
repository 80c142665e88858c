package domain

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// A user's data storage, Barong's DataStorage: titled JSON objects the user writes (each title
// once) and an administrator may delete. Their content is the user's: treat it as personal data.

// Limits of data storage.
const (
	MaxDataStorageTitleBytes = 64
	MaxDataStorageBytes      = 4 << 10
	MaxDataStorages          = 50
)

// Errors of data storage.
var (
	// ErrDataStorageTitleInvalid: the title is empty, longer than MaxDataStorageTitleBytes or
	// holds control characters.
	ErrDataStorageTitleInvalid = errors.New("domain: invalid data storage title")
	// ErrDataStorageInvalid: the data is not a JSON object of at most MaxDataStorageBytes.
	ErrDataStorageInvalid = errors.New("domain: invalid data storage data")
	// ErrDataStorageExists: the user has a record of that title.
	ErrDataStorageExists = errors.New("domain: data storage title taken")
	// ErrDataStorageNotFound: the user has no record of that title.
	ErrDataStorageNotFound = errors.New("domain: no such data storage")
	// ErrDataStorageLimit: the user has MaxDataStorages records.
	ErrDataStorageLimit = errors.New("domain: too many data storage records")
)

// DataStored: the user stored Data (a JSON object) under Title.
type DataStored struct {
	Title string          `json:"title"`
	Data  json.RawMessage `json:"data" personal:"true"`
}

// DataStorageDeleted: the record Title is gone (an administrator deleted it).
type DataStorageDeleted struct {
	Title string `json:"title"`
}

func (DataStored) EventType() string         { return "DataStored" }
func (DataStorageDeleted) EventType() string { return "DataStorageDeleted" }

func checkDataStorageTitle(t string) (string, error) {
	t = strings.TrimSpace(t)
	if t == "" || len(t) > MaxDataStorageTitleBytes || checkProfileText(t) != "" {
		return "", fmt.Errorf("%w: %d bytes", ErrDataStorageTitleInvalid, len(t))
	}
	return t, nil
}

// StoreData stores data, a JSON object, under a title the user does not have yet.
func (u *User) StoreData(title string, data json.RawMessage) ([]Event, error) {
	if err := u.requireActive(); err != nil {
		return nil, err
	}
	title, err := checkDataStorageTitle(title)
	if err != nil {
		return nil, err
	}
	d, err := jsonObject(data, MaxDataStorageBytes)
	if err != nil || d == nil {
		return nil, fmt.Errorf("%w: not a JSON object of at most %d bytes", ErrDataStorageInvalid, MaxDataStorageBytes)
	}
	if _, ok := u.dataStorage[title]; ok {
		return nil, fmt.Errorf("%w: %q", ErrDataStorageExists, title)
	}
	if len(u.dataStorage) >= MaxDataStorages {
		return nil, fmt.Errorf("%w: user %s", ErrDataStorageLimit, u.id)
	}
	return u.record(DataStored{Title: title, Data: d}), nil
}

// DeleteDataStorage deletes the record of that title (an administrator's command).
func (u *User) DeleteDataStorage(title string) ([]Event, error) {
	if err := u.requireOpen(); err != nil {
		return nil, err
	}
	title, err := checkDataStorageTitle(title)
	if err != nil {
		return nil, err
	}
	if _, ok := u.dataStorage[title]; !ok {
		return nil, fmt.Errorf("%w: %q", ErrDataStorageNotFound, title)
	}
	return u.record(DataStorageDeleted{Title: title}), nil
}

// DataStorage returns the user's records, title -> JSON object.
func (u *User) DataStorage() map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(u.dataStorage))
	for k, v := range u.dataStorage {
		out[k] = v
	}
	return out
}

func (u *User) applyDataStorage(e Event) {
	switch e := e.(type) {
	case DataStored:
		if u.dataStorage == nil {
			u.dataStorage = map[string]json.RawMessage{}
		}
		u.dataStorage[e.Title] = e.Data
	case DataStorageDeleted:
		delete(u.dataStorage, e.Title)
	}
}
